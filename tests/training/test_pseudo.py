"""``crossrank.training.pseudo_queries`` and ``crossrank pseudo-queries``: training data from a corpus alone."""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import pytest

from crossrank.cli import pseudo_queries as pseudo_cli
from crossrank.errors import ArgumentError
from crossrank.evaluation.beir import load_beir
from crossrank.testing import write_tiny_beir
from crossrank.training.pseudo_queries import _key, _norm, make_pseudo_dataset, split_sentences

DATA = Path(
    os.environ.get("CROSSRANK_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
WORDS = ["wing", "shock", "plate", "nozzle", "vortex", "rotor", "flutter", "panel", "jet", "cone"]
SPECIAL = {  # id → (title, text): documents that must give no title query, or a fixed ICT one
    "empty": ("", "the empty title doc has a body . it speaks of gliders and kites ."),
    "short": ("kites .", "a short title doc on kites . its body talks of strings and tails ."),
    "repeat": ("heated panels in supersonic flow .", "heated panels in supersonic flow . more."),
    "same1": ("notes on creep buckling of columns .", "columns of steel buckle slowly . as seen."),
    "same2": ("notes on creep buckling of columns .", "columns of wood bend slowly . as shown."),
    "dup": ("", "alpha beta gamma delta . alpha beta gamma delta . other sentence here now ."),
}


def _corpus(n: int = 12):
    rows = []
    for i in range(n):
        a, b, c = WORDS[i % 10], WORDS[(i * 3 + 1) % 10], WORDS[(i * 7 + 2) % 10]
        title = f"measurements of {a} and {b} response in case {i} ."
        text = (
            f"the {a} was tested in tunnel {i} at low speed . results for the {b} agree with "
            f"theory {i} . a new method for {c} loads (e.g. Fig. 3.5) is proposed here {i} ."
        )
        rows.append({"_id": str(i), "title": title, "text": text})
    return rows


def write_source(root: Path, rows=None, special: bool = True) -> str:
    """A corpus (gzipped) plus test queries and qrels that must never be read or copied."""
    rows = _corpus() if rows is None else rows
    if special:
        rows = rows + [{"_id": d, "title": t, "text": x} for d, (t, x) in SPECIAL.items()]
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as stream:
        stream.write("".join(json.dumps(r) + "\n" for r in rows))
    # Broken on purpose: reading them (load_beir) would raise.
    (root / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "secret zebra question"}\nnot json\n'
    )
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("bad header\n")
    return str(root)


def _read(out, name):
    return [json.loads(line) for line in (Path(out) / name).read_text().splitlines()]


def _source_docs(out_data):
    """query id → the source document id it was made from."""
    return {q: q.split(":", 1)[1] for q in out_data.queries if q.startswith(("title:", "ict:"))}


def test_split_sentences():
    text = "the wing was tested . See e.g. Fig. 2 of Smith et al. (U.S. data).  It agrees! Done?"
    assert split_sentences(text) == [
        "the wing was tested .",
        "See e.g. Fig. 2 of Smith et al. (U.S. data).",
        "It agrees!",
        "Done?",
    ]
    assert split_sentences("values near 3.5 and 4.2 hold") == ["values near 3.5 and 4.2 hold"]
    assert split_sentences("") == [] and split_sentences("  no end") == ["no end"]


def test_titles_become_queries_with_their_text_as_only_positive(tmp_path):
    source = write_source(tmp_path / "src")
    summary = make_pseudo_dataset(source, tmp_path / "out", kinds="title")
    data = load_beir(str(tmp_path / "out"), "train")
    originals = {r["_id"]: r for r in _corpus()}
    assert summary["queries"] == {"title": 12} and set(data.queries) == {
        f"title:{i}" for i in originals
    }
    for query_id, doc_id in _source_docs(data).items():
        assert data.qrels[query_id] == {f"{doc_id}#title": 1}
        assert data.queries[query_id] == originals[doc_id]["title"]
        assert data.corpus[f"{doc_id}#title"] == ("", originals[doc_id]["text"])
        assert doc_id not in data.corpus  # replaced: it holds the query verbatim
    # empty / short titles, a title repeated at the text start, a title shared by two documents
    assert not any(q.endswith(tuple(SPECIAL)) for q in data.queries)
    assert data.corpus["same1"] == SPECIAL["same1"] and len(data.corpus) == 12 + len(SPECIAL)
    assert summary["skipped"]["title: shared with another document"] == 2


def test_ict_sentence_is_removed_from_its_positive(tmp_path):
    source = write_source(tmp_path / "src")
    summary = make_pseudo_dataset(source, tmp_path / "out", kinds=["ict"])
    data = load_beir(str(tmp_path / "out"), "train")
    titles = {r["_id"]: (r["title"], r["text"]) for r in _corpus()} | SPECIAL
    # "repeat", "same1", "same2": without the sentence too little of them is left
    assert summary["queries"]["ict"] == len(data.queries) == 12 + 3
    for query_id, doc_id in _source_docs(data).items():
        query, (title, text) = data.queries[query_id], titles[doc_id]
        positive = data.corpus[f"{doc_id}#ict"]
        assert data.qrels[query_id] == {f"{doc_id}#ict": 1} and doc_id not in data.corpus
        assert query in split_sentences(text) and positive[0] == title
        rest = list(split_sentences(text))
        rest.remove(query)
        assert positive[1] == " ".join(rest)
        assert _key(query) not in _norm(data.doc_text(f"{doc_id}#ict"))
    assert data.queries["ict:dup"] == "other sentence here now ."  # the repeated one never


def test_bm25_negatives_are_never_the_source_document(tmp_path):
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    from crossrank.evaluation import BM25
    from crossrank.training.loop import TrainConfig, _Examples

    source = write_source(tmp_path / "src")
    make_pseudo_dataset(source, tmp_path / "out", kinds="title,ict", seed=3)
    data = load_beir(str(tmp_path / "out"), "train")
    sources = _source_docs(data)
    run = BM25(data).search(data.queries, 50)
    config = TrainConfig("unused", str(tmp_path / "out"), "unused", negatives=3)
    pool = _Examples(data, list(data.queries), run, config).pool
    for query_id, negatives in pool.items():
        doc_id, query = sources[query_id], _key(data.queries[query_id])
        assert negatives and not any(d == doc_id or d.startswith(doc_id + "#") for d in negatives)
        assert not any(query in _norm(data.doc_text(d)) for d in negatives)
    # the hazard is real: in the source corpus BM25 ranks the source document (query inside) first
    original = {r["_id"]: (r["title"], r["text"]) for r in _corpus()} | SPECIAL
    data.corpus = original
    hits = BM25(data).search(data.queries, 1)
    assert sum(list(hits[q])[0] == sources[q] for q in hits) >= 0.8 * len(hits)


def test_same_seed_same_files_other_seed_other_queries(tmp_path):
    source = write_source(tmp_path / "src")
    runs = [
        make_pseudo_dataset(source, tmp_path / name, kinds="title,ict", seed=seed)
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    ]
    files = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv")
    content = {name: [(tmp_path / name / f).read_bytes() for f in files] for name in "abc"}
    assert content["a"] == content["b"] and content["a"][1] != content["c"][1]
    assert {k: v for k, v in runs[0].items() if k != "output"} == {
        k: v for k, v in runs[1].items() if k != "output"
    }
    assert runs[0]["queries"]["title"] > 0 and runs[0]["queries"]["ict"] > 0
    capped = make_pseudo_dataset(source, tmp_path / "d", kinds="ict", max_queries=5, seed=1)
    assert (
        capped["queries"] == {"ict": 5} and len(load_beir(str(tmp_path / "d"), "train").qrels) == 5
    )


def test_source_queries_and_qrels_are_never_read(tmp_path):
    source = write_source(tmp_path / "src")  # its queries.jsonl and qrels would fail to load
    summary = make_pseudo_dataset(source, tmp_path / "out", kinds="title,ict")
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "qrels").iterdir()) == ["train.tsv"]
    assert "zebra" not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert summary["source_files_read"] == ["corpus.jsonl.gz"]
    assert json.loads((out / "pseudo.json").read_text()) == summary


def test_mix_adds_prefixed_labelled_collection(tmp_path):
    other = write_tiny_beir(tmp_path / "tiny")  # ids t0-r0 ... and q00 ...; train + test splits
    rows = _corpus() + [{"_id": "t0-r0", "title": "", "text": "a clash of ids with the mix"}]
    rows.append({"_id": "tiny:q00", "title": "", "text": "an id that starts like the prefix"})
    source = write_source(tmp_path / "src", rows, special=False)
    summary = make_pseudo_dataset(
        source, tmp_path / "out", mix=[f"{other}:train"], mix_max_queries=5, seed=0
    )
    data, labelled = load_beir(str(tmp_path / "out"), "train"), load_beir(str(other), "train")
    corpus_ids = [r["_id"] for r in _read(tmp_path / "out", "corpus.jsonl")]
    assert len(corpus_ids) == len(set(corpus_ids)) == len(rows) + len(labelled.corpus)
    prefix = summary["mix"][0]["prefix"]
    assert prefix == "tiny2:" and summary["queries"] == {"title": 12, "tiny2:train": 5}
    mixed = [q for q in data.queries if q.startswith(prefix)]
    assert len(mixed) == 5 and data.corpus["t0-r0"] == ("", "a clash of ids with the mix")
    for query_id in mixed:
        original = query_id[len(prefix) :]
        assert data.queries[query_id] == labelled.queries[original]
        assert data.qrels[query_id] == {prefix + d: r for d, r in labelled.qrels[original].items()}
        assert all(data.corpus[prefix + d] == labelled.corpus[d] for d in labelled.qrels[original])
    with pytest.raises(ValueError, match="is the source collection"):
        make_pseudo_dataset(source, tmp_path / "x", mix=source)
    with pytest.raises(FileNotFoundError, match="mix .--mix. .*nowhere"):
        make_pseudo_dataset(source, tmp_path / "x", mix=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="dev.tsv does not exist"):
        make_pseudo_dataset(source, tmp_path / "x", mix=f"{other}:dev")


def test_output_directory_rules(tmp_path):
    source = write_source(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(ValueError, match=r"output_dir \(--output\) .*out is not empty"):
        make_pseudo_dataset(source, out)
    make_pseudo_dataset(source, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "qrels" / "train.tsv").is_file()
    for target in (source, tmp_path):  # the source itself, or a folder holding it
        with pytest.raises(ValueError, match="holds the input collection"):
            make_pseudo_dataset(source, target, overwrite=True)
    assert (Path(source) / "corpus.jsonl.gz").is_file()


def test_bm25_agreement_keeps_only_queries_whose_positive_bm25_ranks_in_the_top_k(tmp_path, capsys):
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    from crossrank.evaluation.bm25 import BM25

    # its title shares no word with its text: BM25 cannot find the positive for that query
    vague = dict(
        _id="vague", title="wing shock response measurements .", text="a survey of others."
    )
    source = write_source(tmp_path / "src", rows=_corpus() + [vague])
    everything = make_pseudo_dataset(source, tmp_path / "all", kinds="title,ict", seed=3)
    summary = make_pseudo_dataset(
        source, tmp_path / "out", kinds="title,ict", seed=3, agreement_top=1
    )
    unfiltered, kept = (load_beir(str(tmp_path / d), "train") for d in ("all", "out"))
    run = BM25(unfiltered).search(unfiltered.queries, 1)
    agree = {q for q, rel in unfiltered.qrels.items() if set(rel) <= set(run.get(q, {}))}
    assert "title:vague" in unfiltered.queries and "title:vague" not in agree
    assert set(kept.queries) == agree and set(kept.qrels) == agree
    assert 0 < len(agree) < len(unfiltered.queries)
    assert kept.corpus == unfiltered.corpus  # a dropped query's document is still a document
    dropped = summary["dropped_by_agreement"]
    assert summary["agreement_top"] == 1 and summary["pseudo_queries"] == len(agree)
    for kind in ("title", "ict"):
        assert summary["queries"][kind] + dropped.get(kind, 0) == everything["queries"][kind]
    assert everything["dropped_by_agreement"] == {} and everything["agreement_top"] is None

    argv = ["pseudo-queries", source, "-o", str(tmp_path / "cli"), "--bm25-agreement", "1"]
    assert _cli(argv + ["--kind", "title,ict", "--seed", "3"]) == 0
    assert "dropped (positive not in BM25's top 1): " in capsys.readouterr().out


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"kinds": "query"}, r"kinds \(--kind\) must be one or more of"),
        ({"kinds": ()}, r"kinds \(--kind\)"),
        ({"max_queries": 0}, r"max_queries \(--max-queries\) must be an int >= 1"),
        ({"mix_max_queries": -1}, r"mix_max_queries \(--mix-max-queries\)"),
        ({"min_query_words": 0}, r"min_query_words \(--min-query-words\) must be >= 1"),
        ({"max_query_words": 2}, r"max_query_words \(--max-query-words\) must be an int >= "),
        ({"agreement_top": 0}, r"agreement_top \(--bm25-agreement\) must be an int >= 1"),
    ],
)
def test_bad_arguments_are_named(tmp_path, overrides, match):
    source = write_source(tmp_path / "src")
    with pytest.raises(ArgumentError, match=match):
        make_pseudo_dataset(source, tmp_path / "out", **overrides)
    assert not (tmp_path / "out").exists()


def test_missing_source_and_empty_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"source_dir \(DATA_DIR\) .*nowhere"):
        make_pseudo_dataset(str(tmp_path / "nowhere"), tmp_path / "out")
    source = write_source(tmp_path / "empty", rows=[], special=False)
    summary = make_pseudo_dataset(source, tmp_path / "out", kinds="title,ict")
    assert summary["queries"] == {"title": 0, "ict": 0} and summary["corpus_size"] == 0
    data = load_beir(str(tmp_path / "out"), "train")
    assert data.queries == {} and data.corpus == {}


def _cli(argv):
    parser = argparse.ArgumentParser(prog="crossrank")
    pseudo_cli.add_arguments(parser.add_subparsers(dest="command").add_parser("pseudo-queries"))
    return pseudo_cli.run(parser.parse_args(argv))


def test_cli_prints_summary_and_exit_status(tmp_path, capsys):
    source = write_source(tmp_path / "src")
    out = str(tmp_path / "out")
    assert _cli(["pseudo-queries", source, "-o", out, "--kind", "title,ict", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "queries: title " in printed and ", ict " in printed and f"wrote {out}" in printed
    assert f"corpus: {12 + len(SPECIAL)} documents" in printed
    assert (
        _cli(["pseudo-queries", source, "-o", out, "--overwrite", "--json", "--kind", "ict"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["queries"] == {"ict": 15}
    with pytest.raises(ValueError, match="--output"):
        _cli(["pseudo-queries", source, "-o", out])
    empty = write_source(tmp_path / "empty", rows=[], special=False)
    assert _cli(["pseudo-queries", empty, "-o", str(tmp_path / "e")]) == 1
    assert "no query could be made" in capsys.readouterr().err


@pytest.mark.skipif(not (DATA / "cranfield").is_dir(), reason="no Cranfield data")
def test_cranfield_without_its_queries(tmp_path):
    source = DATA / "cranfield"
    summary = make_pseudo_dataset(str(source), tmp_path / "out", kinds="title,ict", seed=0)
    data = load_beir(str(tmp_path / "out"), "train")
    assert len(data.queries) == summary["pseudo_queries"] > 1300 and len(data.corpus) == 1400
    assert min(summary["queries"]["title"], summary["queries"]["ict"]) > 500
    held_out = {_key(q["text"]) for q in _read(source, "queries.jsonl")}
    assert not held_out & {_key(q) for q in data.queries.values()}
    assert all(len(docs) == 1 for docs in data.qrels.values())


def test_training_runs_on_pseudo_queries(tmp_path):
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    pytest.importorskip("ir_measures")
    from crossrank.testing import save_model
    from crossrank.training.loop import TrainConfig, train

    source = write_source(tmp_path / "src")
    make_pseudo_dataset(source, tmp_path / "data", kinds="title,ict")
    base = save_model(tmp_path / "base", "bert", num_labels=2, seed=3)
    config = TrainConfig(
        base,
        str(tmp_path / "data"),
        str(tmp_path / "run"),
        max_steps=2,
        max_length=32,
        queries_per_step=2,
        negatives=3,
        negatives_depth=10,
        eval_queries=2,
        eval_every=0,
        eval_top_n=5,
        show_progress=False,
    )
    result = train(config)
    assert (
        result.steps == 2
        and len(result.losses) == 2
        and [e["step"] for e in result.evals] == [0, 2]
    )
    assert (tmp_path / "run" / "config.json").is_file()
