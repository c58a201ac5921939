"""The ``crossrank rank`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crossrank import Reranker
from crossrank.cli.commands import main

DOCS = [
    "Paris is the capital city of France.",
    "The giant panda eats bamboo.",
    "A python is a snake.",
]


def _rows(out: str):
    return [json.loads(line) for line in out.strip().splitlines()]


def test_rank_text_file(bert_dir, tmp_path, capsys):
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(DOCS) + "\n")
    assert (
        main(
            ["rank", "--model", bert_dir, "--max-length", "48", "--query", "panda food", str(path)]
        )
        == 0
    )
    rows = _rows(capsys.readouterr().out)
    expected = Reranker(bert_dir, max_length=48).rank("panda food", DOCS)
    assert [r["index"] for r in rows] == [h.index for h in expected]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["text"] for r in rows] == [h.text for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-5)


def test_rank_jsonl_keeps_fields_top_k_threshold_raw(bert_dir, tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"_id": f"d{i}", "text": t}) for i, t in enumerate(DOCS)))
    args = [
        "rank",
        "--model",
        bert_dir,
        "--max-length",
        "48",
        "-q",
        "panda food",
        "--top-k",
        "2",
        "--raw",
    ]
    assert main([*args, str(path)]) == 0
    rows = _rows(capsys.readouterr().out)
    expected = Reranker(bert_dir, max_length=48).rank("panda food", DOCS, top_k=2, normalize=False)
    assert [r["_id"] for r in rows] == [f"d{h.index}" for h in expected]
    threshold = expected[0].score
    assert main([*args, "--threshold", str(threshold - 1e-4), str(path)]) == 0
    assert len(_rows(capsys.readouterr().out)) == 1


def test_malformed_jsonl_is_a_clear_error(bert_dir, tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "ok"}\n{"title": "no text"}\n')
    assert main(["rank", "--model", bert_dir, "-q", "x", str(path)]) == 2
    assert "line 2 needs a string field 'text'" in capsys.readouterr().err


def test_offline_default_model_is_one_line_naming_model_path(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(DOCS))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "crossrank.cli", "rank", "-q", "panda", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "BAAI/bge-reranker-base" in lines[0] and "--model PATH" in lines[0]


def test_stdin_and_progress_bar(bert_dir):
    docs = [f"document number {i} about pandas and bamboo" for i in range(70)]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossrank.cli",
            "rank",
            "--model",
            bert_dir,
            "--max-length",
            "48",
            "-q",
            "panda",
            "--top-k",
            "5",
            "-",
        ],
        input="\n".join(docs),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_rows(proc.stdout)) == 5
    assert "Reranking" in proc.stderr  # 70 documents get a bar


def test_rank_maxp_option_matches_the_api(bert_dir, tmp_path, capsys):
    long_doc = (
        " ".join(["the sky is blue and the rain falls"] * 30) + " the giant panda eats bamboo"
    )
    path = tmp_path / "docs.txt"
    path.write_text("\n".join([long_doc, *DOCS]))
    args = ["rank", "--model", bert_dir, "--max-length", "48", "-q", "panda food"]
    assert main([*args, "--long-documents", "maxp", "--stride", "8", str(path)]) == 0
    rows = _rows(capsys.readouterr().out)
    expected = Reranker(bert_dir, max_length=48, long_documents="maxp", stride=8).rank(
        "panda food", [long_doc, *DOCS]
    )
    assert [r["index"] for r in rows] == [h.index for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-5)


def test_rank_rejects_instruction_for_a_cross_encoder(bert_dir, tmp_path, capsys):
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(DOCS))
    assert main(["rank", "--model", bert_dir, "-q", "x", "--instruction", "judge", str(path)]) == 2
    assert "instruction" in capsys.readouterr().err


def test_pseudo_queries_subcommand_writes_a_training_set(tmp_path, capsys):
    source = tmp_path / "corpus"
    source.mkdir()
    docs = [
        {"_id": f"d{i}", "title": f"heat transfer in {w} boundary layers at high speed",
         "text": f"Experiments on {w} flow. The {w} layer thickens downstream of the shock."}
        for i, w in enumerate(["laminar", "turbulent", "hypersonic", "separated", "rarefied"])
    ]  # fmt: skip
    (source / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    out = tmp_path / "pseudo"
    assert main(["pseudo-queries", str(source), "--output", str(out), "--kind", "title"]) == 0
    assert str(out) in capsys.readouterr().out
    assert len((out / "qrels" / "train.tsv").read_text().splitlines()) == 1 + len(docs)
    queries = [json.loads(line)["text"] for line in (out / "queries.jsonl").read_text().splitlines()]
    assert sorted(queries) == sorted(d["title"] for d in docs)
    # refused the second time: the directory is not empty
    assert main(["pseudo-queries", str(source), "--output", str(out)]) != 0
