"""``crossrank.evaluation`` and ``crossrank eval``: BEIR loading, BM25, metrics wiring, fusion."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

from crossrank import Reranker  # noqa: E402
from crossrank.cli.commands import main  # noqa: E402
from crossrank.evaluation import (  # noqa: E402
    BM25,
    compute_metrics,
    evaluate,
    fuse,
    load_beir,
    metrics_for,
    rerank,
)
from crossrank.testing import write_tiny_beir  # noqa: E402

DATA = Path(
    os.environ.get("CROSSRANK_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)


@pytest.fixture
def tiny_beir(tmp_path):
    return write_tiny_beir(tmp_path / "tiny")


# ---------------------------------------------------------------- metrics wiring


def test_single_relevant_at_rank_two():
    qrels = {"q": {"b": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    m = compute_metrics(qrels, run)
    assert m["RR@10"] == pytest.approx(0.5)  # first relevant at rank 2 → 1/2
    assert m["nDCG@10"] == pytest.approx(1 / math.log2(3))  # DCG 1/log2(2+1), ideal DCG 1
    assert m["R@10"] == pytest.approx(1.0)


def test_relevant_beyond_ten_counts_only_for_recall_at_100():
    qrels = {"q": {"d11": 1, "missing": 1}}  # two relevant, one never retrieved
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}  # d11 at rank 12
    m = compute_metrics(qrels, run)
    assert m["RR@10"] == 0.0 and m["nDCG@10"] == 0.0 and m["R@10"] == 0.0
    assert m["R@100"] == pytest.approx(0.5)  # 1 of 2 relevant in the top 100


def test_graded_relevance_uses_linear_gain():
    qrels = {"q": {"a": 4, "b": 1}}
    run = {"q": {"b": 2.0, "a": 1.0}}  # the weaker document first
    # DCG = 1/log2(2) + 4/log2(3); ideal = 4/log2(2) + 1/log2(3)   (gain = grade, not 2^grade - 1)
    expected = (1 + 4 / math.log2(3)) / (4 + 1 / math.log2(3))
    assert compute_metrics(qrels, run)["nDCG@10"] == pytest.approx(expected)
    assert compute_metrics(qrels, run)["RR@10"] == pytest.approx(1.0)


def test_document_with_the_query_id_is_kept():
    # Cranfield: query "225" has document "225" as relevant; it must not be dropped
    m = compute_metrics({"225": {"225": 2}}, {"225": {"225": 5.0, "7": 1.0}})
    assert m["RR@10"] == 1.0 and m["nDCG@10"] == pytest.approx(1.0)


def test_mean_over_queries_and_missing_query_counts_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": {"a": 2.0, "x": 1.0}, "q2": {"x": 2.0, "b": 1.0}}  # q3 not retrieved at all
    assert compute_metrics(qrels, run)["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_judged_non_relevant_rows_do_not_count():
    qrels = {"q": {"a": 0, "b": 1}}
    assert compute_metrics(qrels, {"q": {"a": 2.0, "b": 1.0}})["RR@10"] == pytest.approx(0.5)


def test_fuse_min_max_per_query():
    bm25 = {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}
    model = {"q": {"a": -3.0, "b": 1.0, "c": 5.0}}
    # normalized: bm25 a=1, b=.5, c=0 ; model a=0, b=.5, c=1
    assert fuse(bm25, model, 0.25)["q"] == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.75})
    assert fuse(bm25, model, 1.0)["q"] == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    assert bm25 == {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}  # not mutated
    with pytest.raises(ValueError, match="fuse weight"):
        fuse(bm25, model, 1.5)


# ---------------------------------------------------------------- loading


def test_load_tiny(tiny_beir):
    data = load_beir(tiny_beir, "test")
    assert len(data.corpus) == 50 and len(data.queries) == 20
    assert data.qrels["q00"] == {"t0-r0": 1, "t0-r1": 1}
    assert data.doc_text("t0-r0") == "panda bamboo the panda bamboo and eat"
    assert data.doc_text("t0-r1") == "eat with panda bamboo eat"  # empty title: no leading space
    assert list(data.subset(3).queries) == ["q00", "q01", "q10"]


def _break(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("qrels/test.tsv", "q00\tt0-r0\t1\n", r"qrels/test.tsv: line 1 must be the header"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq00\tt0-r0\n", r"line 2 has 2 columns"),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq00\tt0-r0\thigh\n",
            r"line 2 score 'high'",
        ),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq00\tt0-r0\t1\nzz\tt0-r0\t1\n",
            r"line 3 query-id 'zz' is not in queries",
        ),
        (
            "qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq00\tnope\t1\n",
            r"line 2 corpus-id 'nope' is not in the corpus",
        ),
        (
            "queries.jsonl",
            '{"_id": "q00", "text": "x"}\n{"text": "no id"}\n',
            r"queries.jsonl: line 2 needs a string field '_id'",
        ),
        (
            "queries.jsonl",
            '{"_id": "q00", "text": "x"}\nnot json\n',
            r"queries.jsonl: line 2 is not valid JSON",
        ),
    ],
)
def test_malformed_files_name_file_and_line(tiny_beir, name, text, message):
    _break(tiny_beir, name, text)
    with pytest.raises(ValueError, match=message):
        load_beir(tiny_beir, "test")


def test_corpus_errors_and_missing_files(tmp_path):
    root = write_tiny_beir(tmp_path / "plain", gz=False)
    good = (root / "corpus.jsonl").read_text()
    _break(root, "corpus.jsonl", '{"_id": "d1", "title": "t", "text": 3}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl: line 1 needs a string field 'text'"):
        load_beir(root)
    _break(root, "corpus.jsonl", good)
    with pytest.raises(
        FileNotFoundError, match=r"dev.tsv does not exist \(splits here: \['test', 'train'\]\)"
    ):
        load_beir(root, "dev")
    os.remove(root / "corpus.jsonl")
    with pytest.raises(FileNotFoundError, match="no corpus.jsonl or corpus.jsonl.gz"):
        load_beir(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(tmp_path / "nowhere")


# ---------------------------------------------------------------- BM25 and evaluate


def test_bm25_ranks_the_topic_documents_first(tiny_beir):
    data = load_beir(tiny_beir)
    run = BM25(data).search({"q": "panda bamboo"}, top_n=100)
    top_two = sorted(run["q"], key=run["q"].get, reverse=True)[:2]
    assert set(top_two) == {"t0-r0", "t0-r1"}
    assert all(s > 0 for s in run["q"].values())  # documents without a query term are dropped
    assert len(BM25(data).search({"q": "panda"}, top_n=2)["q"]) == 2


@pytest.mark.skipif(not (DATA / "scifact").is_dir(), reason="shared SciFact data not present")
def test_bm25_reproduces_the_scifact_reference():
    report = evaluate(DATA / "scifact", split="test", show_progress=False)
    bm25 = report.results["bm25"]  # the data README's numbers: 0.686 · 0.913, MRR@10 0.649
    assert report.num_queries == 300
    assert bm25["nDCG@10"] == pytest.approx(0.686, abs=5e-4)
    assert bm25["R@100"] == pytest.approx(0.913, abs=5e-4)
    assert bm25["RR@10"] == pytest.approx(0.649, abs=5e-4)


def test_evaluate_reranks_with_the_reranker_scores(tiny_beir, bert_dir):
    reranker = Reranker(bert_dir, max_length=64)
    report = evaluate(
        tiny_beir, reranker, top_n=5, max_queries=4, fuse_weight=0.5, show_progress=False
    )
    assert report.num_queries == 4 and set(report.results) == {"bm25", "rerank", "fused@0.5"}
    data = load_beir(tiny_beir).subset(4)
    for query_id, docs in report.runs["bm25"].items():
        assert len(docs) <= 5
        expected = reranker.compute_score(
            [[data.queries[query_id], data.doc_text(d)] for d in docs]
        )
        assert list(report.runs["rerank"][query_id].values()) == pytest.approx(expected, abs=1e-5)
    # 5 candidates: recall at 5, named so (a run of 5 has no 100th document)
    assert report.metrics == metrics_for(5) == ("nDCG@10", "R@10", "R@5", "RR@10")
    for system in ("bm25", "rerank"):
        expected = compute_metrics(data.qrels, report.runs[system], metrics_for(5))
        assert report.results[system] == expected


def test_rerank_changes_the_order_the_right_way(tiny_beir):
    class WordCount:  # any object with compute_score works; this one counts query words
        sign = 1.0

        def compute_score(self, pairs):
            return [self.sign * sum(w in doc.split() for w in q.split()) for q, doc in pairs]

    data = load_beir(tiny_beir).subset(1)  # q00 "what panda bamboo eat": t0-r0, t0-r1 relevant
    run = BM25(data).search(data.queries, 10)
    assert len(run["q00"]) == 5  # the 2 relevant documents and 3 negatives sharing one word
    best = rerank(WordCount(), data, run, show_progress=False)
    assert compute_metrics(data.qrels, best) == pytest.approx(
        {"nDCG@10": 1.0, "R@10": 1.0, "R@100": 1.0, "RR@10": 1.0}
    )
    worst = WordCount()
    worst.sign = -1.0
    reranked = rerank(worst, data, run, show_progress=False)
    assert set(sorted(reranked["q00"], key=reranked["q00"].get)[:2]) == {"t0-r0", "t0-r1"}
    assert compute_metrics(data.qrels, reranked)["RR@10"] == pytest.approx(1 / 4)  # ranks 4, 5


# ---------------------------------------------------------------- CLI


def test_eval_cli_table_and_json(tiny_beir, bert_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    args = ["eval", str(tiny_beir), "--model", bert_dir, "--max-length", "64", "--top-n", "5"]
    args += ["--max-queries", "3", "--fuse-weight", "0.3", "--no-progress", "-o", str(out)]
    assert main(args) == 0
    table = capsys.readouterr().out
    report = json.loads(out.read_text())
    expected = evaluate(
        tiny_beir,
        Reranker(bert_dir, max_length=64),
        top_n=5,
        max_queries=3,
        fuse_weight=0.3,
        show_progress=False,
    )
    assert report["num_queries"] == 3 and report["model"] == bert_dir
    for system in ("bm25", "rerank", "fused@0.3"):
        assert report["results"][system] == pytest.approx(expected.results[system])
        row = next(line for line in table.splitlines() if line.startswith(system))
        assert row.split()[1] == f"{expected.results[system]['nDCG@10']:.4f}"


def test_eval_cli_bm25_only_json_and_errors(tiny_beir, tmp_path, capsys):
    assert main(["eval", str(tiny_beir), "--bm25-only", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"bm25"} and report["model"] is None
    assert main(["eval", str(tmp_path / "missing"), "--bm25-only"]) == 2
    assert "does not exist" in capsys.readouterr().err
