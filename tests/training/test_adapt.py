"""``crossrank adapt`` / :func:`crossrank.training.adapt`: pseudo queries + training, one call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

from crossrank import Reranker  # noqa: E402
from crossrank.cli import main  # noqa: E402
from crossrank.errors import ArgumentError  # noqa: E402
from crossrank.evaluation.reranking import evaluate  # noqa: E402
from crossrank.testing import save_model, write_titled_corpus  # noqa: E402
from crossrank.training.adaptation import AGREEMENT_TOP, FUSE_WEIGHT, RECIPE, adapt  # noqa: E402

# small enough for a test: the recipe's other settings stay as they are
TINY = dict(max_length=32, eval_queries=4, eval_top_n=5, negatives_depth=10, max_steps=6)
DOCUMENTS = 20  # write_titled_corpus: 10 topics of 2 documents, each can give a pseudo query


@pytest.fixture
def base(tmp_path):
    return save_model(tmp_path / "base", "bert", seed=5)


def test_adapt_writes_pseudo_queries_a_model_and_its_summary_from_the_corpus_alone(tmp_path, base):
    source = str(write_titled_corpus(tmp_path / "unlabelled"))  # queries/qrels broken: unread
    before = sorted(p.read_bytes() for p in Path(source).rglob("*") if p.is_file())
    out = tmp_path / "run"
    result = adapt(source, base, str(out), seed=3, overrides=TINY, show_progress=False)

    assert result.model_dir == str(out / "model") and result.seed == 3
    assert result.pseudo["source_files_read"] == ["corpus.jsonl.gz"]
    # the round-trip filter ran: every title shares its words with its own text here
    assert result.pseudo["agreement_top"] == AGREEMENT_TOP
    assert sum(result.pseudo["queries"].values()) == DOCUMENTS
    assert result.training["steps"] == 6 and result.training["stopped_by"] == "schedule"
    assert result.training["kept_step"] == 6  # the recipe keeps the last weights
    assert set(result.training["held_out_nDCG@10"]) >= {"bm25", "model", "fused@0.5"}
    assert result.evaluation is None  # no labels read
    # the recipe as run, with the budget left to the loop after the pseudo queries and reserve
    assert result.settings["teacher"] == "bm25" and result.settings["keep"] == "last"
    assert (
        result.settings["max_length"] == 32 and result.settings["negatives"] == RECIPE["negatives"]
    )
    assert 0 < result.settings["time_budget_minutes"] < 28.0 - 1.0 + 1e-9
    assert 0 <= result.cpu_minutes < 28.0 and result.minutes > 0

    saved = json.loads((out / "adapt.json").read_text())
    assert saved == json.loads(json.dumps(result.to_dict()))
    log = json.loads((out / "model" / "training_log.json").read_text())
    assert log["config"]["data_dir"] == str(out / "pseudo") and log["config"]["seed"] == 3
    scores = Reranker(result.model_dir, max_length=32).compute_score(
        [("panda bamboo", "a panda is eat"), ("panda bamboo", "the sky is blue")]
    )
    assert len(scores) == 2 and all(s == s for s in scores)
    assert sorted(p.read_bytes() for p in Path(source).rglob("*") if p.is_file()) == before
    assert "pseudo queries: title" in result.table() and result.model_dir in result.table()


def test_adapt_measures_on_the_split_it_is_asked_for(tmp_path, base):
    source = str(write_titled_corpus(tmp_path / "labelled", labelled=True))
    result = adapt(
        source,
        base,
        str(tmp_path / "run"),
        evaluate_split="test",
        overrides=TINY,
        show_progress=False,
    )
    results = result.evaluation["results"]
    assert set(results) == {"bm25", "rerank", f"fused@{FUSE_WEIGHT:g}"}
    assert result.evaluation["split"] == "test" and result.evaluation["num_queries"] == 10
    # the same BM25 and reranker figures as crossrank eval on the saved model
    report = evaluate(
        source,
        Reranker(result.model_dir, max_length=32),
        fuse_weight=FUSE_WEIGHT,
        show_progress=False,
    )
    for system in results:
        assert results[system]["nDCG@10"] == pytest.approx(
            report.results[system]["nDCG@10"], abs=1e-6
        )
    assert "test (10 queries, BM25 top-100), nDCG@10: bm25" in result.table()


def test_adapt_refuses_bad_arguments_naming_them(tmp_path, base):
    source = str(write_titled_corpus(tmp_path / "c"))
    out = tmp_path / "run"
    out.mkdir()
    (out / "kept.txt").write_text("a previous run")
    with pytest.raises(ArgumentError, match=r"--output.*not empty.*--overwrite"):
        adapt(source, base, str(out), overrides=TINY, show_progress=False)
    assert (out / "kept.txt").read_text() == "a previous run"
    with pytest.raises(ArgumentError, match=r"budget_minutes \(--budget-minutes\) must be >"):
        adapt(source, base, str(tmp_path / "r2"), budget_minutes=1.0)
    with pytest.raises(ArgumentError, match="overrides: 'seed' is not a training setting"):
        adapt(source, base, str(tmp_path / "r3"), overrides={"seed": 1})
    with pytest.raises(ArgumentError, match="overrides: 'learning_rat' is not"):
        adapt(source, base, str(tmp_path / "r4"), overrides={"learning_rat": 1e-4})
    with pytest.raises(ArgumentError, match="negatives must be >= 1"):
        adapt(source, base, str(tmp_path / "r5"), overrides={"negatives": 0})
    with pytest.raises(ArgumentError, match=r"kinds \(--kind\) must be one or more of"):
        adapt(source, base, str(tmp_path / "r8"), kinds="title,question")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        adapt(str(tmp_path / "missing"), base, str(tmp_path / "r6"))
    assert not any((tmp_path / f"r{n}").exists() for n in (2, 3, 4, 5, 6, 8))

    untitled = tmp_path / "untitled"
    untitled.mkdir()
    rows = [{"_id": str(i), "title": "", "text": "one short line"} for i in range(5)]
    (untitled / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="no pseudo query could be made"):
        adapt(str(untitled), base, str(tmp_path / "r7"), overrides=TINY, show_progress=False)


def test_adapt_command_prints_the_summary_and_exits_2_on_errors(tmp_path, base, capsys):
    source = str(write_titled_corpus(tmp_path / "c"))
    out = tmp_path / "run"
    # the recipe's own settings on a tiny corpus: 4 epochs of ~20 queries
    argv = ["adapt", source, "--model", base, "--output", str(out), "--no-progress", "--json"]
    assert main(argv + ["--kind", "title", "--seed", "7", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)  # --json: stdout is the summary alone
    assert summary["seed"] == 7 and list(summary["pseudo"]["queries"]) == ["title"]
    assert summary["pseudo"]["agreement_top"] == AGREEMENT_TOP
    assert summary["settings"]["device"] == "cpu"
    assert summary["training"]["stopped_by"] == "schedule"
    assert summary["settings"]["epochs"] == RECIPE["epochs"]
    summary_steps = summary["training"]["steps"]
    assert json.loads((out / "adapt.json").read_text()) == summary

    assert main(argv) == 2  # the run is there: not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--budget-minutes", "0.5"]) == 2
    assert "--budget-minutes" in capsys.readouterr().err
    # 0 turns the filter off
    more = ["--overwrite", "--kind", "title", "--bm25-agreement", "0", "--epochs", "1"]
    assert main(argv + more + ["--budget-minutes", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pseudo"]["agreement_top"] is None and summary["settings"]["epochs"] == 1.0
    assert summary["training"]["steps"] < summary_steps


def test_adapt_mixes_a_labelled_collection_with_the_pseudo_queries(tmp_path, base, capsys):
    source = str(write_titled_corpus(tmp_path / "unlabelled"))
    labelled = write_titled_corpus(tmp_path / "labelled", labelled=True)
    before = sorted(p.read_bytes() for p in labelled.rglob("*") if p.is_file())
    out = tmp_path / "run"
    argv = ["adapt", source, "--model", base, "--output", str(out), "--no-progress", "--json"]
    assert (
        main(argv + ["--kind", "title", "--mix", f"{labelled}:test", "--budget-minutes", "3"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    (mixed,) = summary["pseudo"]["mix"]
    assert summary["pseudo"]["queries"] == {"title": DOCUMENTS, f"{mixed['prefix']}test": 10}
    assert mixed["queries"] == 10  # one labelled query per topic, all of them
    trained_on = [json.loads(line)["_id"] for line in (out / "pseudo" / "queries.jsonl").open()]
    assert sum(q.startswith(mixed["prefix"]) for q in trained_on) == 10
    assert sorted(p.read_bytes() for p in labelled.rglob("*") if p.is_file()) == before

    fresh = ["adapt", source, "--model", base, "--output", str(tmp_path / "new"), "--no-progress"]
    assert main(fresh + ["--mix", str(tmp_path / "nowhere")]) == 2
    assert "--mix" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # refused before anything was written
