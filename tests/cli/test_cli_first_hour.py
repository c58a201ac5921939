"""The ``crossrank`` command in a new user's first hour: inputs, messages, version, fast help."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

import crossrank
from crossrank.cli.commands import EXIT_NO_DOCUMENTS, main


def _rank_args(model_dir, path):
    return ["rank", "--model", model_dir, "--max-length", "48", "--no-progress", "-q", "x", path]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a model is loaded (the input check must come first)."""
    from crossrank import reranker

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(reranker.Reranker, "__init__", refuse)


def test_closed_stdin_is_a_clear_error(bert_dir):
    # `exec ... <&-` starts the command with file descriptor 0 closed, as a cron job or daemon may.
    command = [sys.executable, "-m", "crossrank.cli", *_rank_args(bert_dir, "-")]
    proc = subprocess.run(
        ["bash", "-c", 'exec "$@" <&-', "bash", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "crossrank: error: documents: standard input is closed; pipe documents in or pass a file"
    )


def test_non_utf8_file_error_names_the_file(bert_dir, tmp_path, capsys, no_model_load):
    path = tmp_path / "latin1.txt"
    path.write_bytes("the giant panda\ncafé au lait\n".encode("latin-1"))
    assert main(_rank_args(bert_dir, str(path))) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"crossrank: error: {path}: not UTF-8 text (line 2: byte 0xe9)")
    assert "\n" not in err


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_empty_file_is_a_note_and_exit_1_before_loading(
    bert_dir, tmp_path, capsys, no_model_load, content
):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    assert main(_rank_args(bert_dir, str(path))) == EXIT_NO_DOCUMENTS == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"crossrank: {path}: no documents (empty or only blank lines)\n"


def test_empty_stdin_names_standard_input(bert_dir, capsys, monkeypatch, no_model_load):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(_rank_args(bert_dir, "-")) == 1
    assert "crossrank: standard input: no documents" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"crossrank {crossrank.__version__}"


def test_help_imports_no_torch_or_transformers():
    # The time of `crossrank --help` is mostly imports; torch alone takes seconds. Importing the
    # package and building every subcommand's parser must not import the heavy libraries.
    code = (
        "import sys, crossrank, crossrank.cli.commands as cli\n"
        "cli._build_parser().format_help()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    proc = subprocess.run(
        [sys.executable, "-m", "crossrank.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "rank" in proc.stdout and "--version" in proc.stdout


def test_lazy_package_names_still_import():
    from crossrank import DEFAULT_MODEL, RankedDocument, Reranker  # noqa: F401

    assert crossrank.Reranker is Reranker and "Reranker" in dir(crossrank)
    with pytest.raises(AttributeError, match="has no attribute 'Rerankr'"):
        crossrank.Rerankr  # noqa: B018


def test_no_loading_bar_without_progress(bert_dir, tmp_path, capsys):
    path = tmp_path / "docs.txt"
    path.write_text("a panda\na snake\n")
    assert main(_rank_args(bert_dir, str(path))) == 0
    assert "Loading weights" not in capsys.readouterr().err


def test_eval_table_names_the_recall_depth_it_computed(tmp_path, capsys):
    pytest.importorskip("bm25s")
    pytest.importorskip("ir_measures")
    from crossrank.testing import write_tiny_beir

    data = str(write_tiny_beir(tmp_path / "tiny"))
    assert main(["eval", data, "--bm25-only", "--top-n", "3", "--no-progress"]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["system", "nDCG@10", "R@10", "R@3", "RR@10"]
    out = tmp_path / "runs" / "report.json"  # -o into a folder that does not exist yet
    args = ["eval", data, "--bm25-only", "--top-n", "3", "--json", "--no-progress", "-o", str(out)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]["bm25"]) == {"nDCG@10", "R@10", "R@3", "RR@10"}
    assert json.loads(out.read_text())["results"] == report["results"]
    assert main(["eval", data, "--bm25-only", "--no-progress"]) == 0  # default depth 100
    assert "R@100" in capsys.readouterr().out.splitlines()[1]


def test_every_subcommand_help_formats():
    # argparse expands %-formats in help strings only when --help is asked for, so a stray "%"
    # (it happened: "20-30% cheaper") crashes `crossrank train --help` and nothing else notices.
    import argparse

    from crossrank.cli import commands as cli

    parser = cli._build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"rank", "eval", "train", "serve"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        text = sub.format_help()
        assert "usage:" in text, name
