"""Every subcommand, tried as a new user would: a bad model, a missing data directory or a bad
option value ends it with one line on stderr, exit status 2 and no traceback, before anything
heavy starts (a model load, a server, Ray)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crossrank.cli.commands import main
from crossrank.testing import write_tiny_beir

MISSING_MODEL = os.path.join("runs", "does-not-exist")  # relative: it could be a hub id


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No hub (a missing model is reported without a network wait), run from an empty folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def _refuse(what):
    def refuse(*args, **kwargs):
        raise AssertionError(what)

    return refuse


@pytest.fixture
def no_model_opened(monkeypatch):
    """Fail the test if a checkpoint is opened: the error must come before."""
    from crossrank import loading, reranker

    monkeypatch.setattr(loading, "open_checkpoint", _refuse("a checkpoint was opened"))
    monkeypatch.setattr(reranker, "open_checkpoint", _refuse("a checkpoint was opened"))


@pytest.fixture
def data_dir(tmp_path):
    return str(write_tiny_beir(tmp_path / "tiny"))


def one_error_line(capsys) -> str:
    """The single line the command wrote on stderr (and that it wrote nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    assert lines[0].startswith("crossrank")
    return lines[0]


def assert_missing_model(line: str) -> None:
    # The directory is named first, the hub only after it
    assert "runs/does-not-exist" in line and "no such directory" in line
    assert line.index("no such directory") < line.index("hub")


def _arguments(command, data_dir, tmp_path):
    return {
        "rank": ["rank", str(_docs(tmp_path)), "-q", "panda"],
        "eval": ["eval", data_dir, "--no-progress"],
        "calibrate": ["calibrate", data_dir, "--split", "train", "-o", "c.json", "--no-progress"],
        "serve": ["serve", "--port", "0"],
        "rerank-table": ["rerank-table", str(_table(tmp_path)), "-o", "out.jsonl"],
        "train": ["train", data_dir, "--output", "run", "--no-progress"],
    }[command]


def _docs(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("the giant panda eats bamboo\na python is a snake\n")
    return path


def _table(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "panda", "text": "the giant panda eats bamboo"}\n')
    return path


@pytest.mark.parametrize("command", ["rank", "eval", "calibrate", "serve", "rerank-table", "train"])
def test_a_model_path_that_does_not_exist_is_one_line_naming_the_directory(
    command, data_dir, tmp_path, capsys, monkeypatch
):
    if command == "serve":
        pytest.importorskip("uvicorn")
    if command == "rerank-table":
        ray = pytest.importorskip("ray")
        monkeypatch.setattr(ray, "init", _refuse("Ray was started"))
    assert main([*_arguments(command, data_dir, tmp_path), "--model", MISSING_MODEL]) == 2
    line = one_error_line(capsys)
    assert_missing_model(line)
    assert "-o" not in line.split("hub", 1)[1]  # calibrate used to ask where to save instead


@pytest.mark.parametrize("command", ["rank", "eval", "calibrate", "serve", "rerank-table"])
def test_a_bad_model_option_value_is_one_line_before_any_load(
    command, data_dir, tmp_path, capsys, monkeypatch, no_model_opened
):
    if command == "serve":
        pytest.importorskip("uvicorn")
    if command == "rerank-table":
        ray = pytest.importorskip("ray")
        monkeypatch.setattr(ray, "init", _refuse("Ray was started"))
    args = [*_arguments(command, data_dir, tmp_path), "--model", MISSING_MODEL]
    assert main([*args, "--batch-size", "0"]) == 2
    assert "batch_size must be an int >= 1, got 0" in one_error_line(capsys)
    assert main([*args, "--quantize", "int8"]) == 2  # int8 needs the openvino or onnx backend
    assert "quantize='int8' needs backend=" in one_error_line(capsys)


@pytest.mark.parametrize("command", ["eval", "calibrate", "train", "pseudo-queries"])
def test_a_missing_data_directory_is_one_line_before_any_load(
    command, tmp_path, capsys, no_model_opened
):
    missing = str(tmp_path / "no-data")
    args = {
        "eval": ["eval", missing, "--model", MISSING_MODEL],
        "calibrate": ["calibrate", missing, "--model", MISSING_MODEL],
        "train": ["train", missing, "--model", MISSING_MODEL, "-o", "run"],
        "pseudo-queries": ["pseudo-queries", missing, "-o", "pseudo"],
    }[command]
    assert main(args) == 2
    line = one_error_line(capsys)
    assert missing in line and ("does not exist" in line or "is not a directory" in line)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "DATA", "--model", "m", "-o", "run", "--lr", "0"], "learning_rate must be > 0"),
        (["pseudo-queries", "DATA", "-o", "pseudo", "--kind", "nope"], "must be one or more of"),
        (["eval", "DATA", "--bm25-only", "--split", "nope"], "nope.tsv does not exist"),
        (["calibrate", "DATA", "--held-out", "0"], "--held-out must be between 0 and 1"),
    ],
)
def test_a_bad_value_of_a_subcommand_option_is_one_line(
    args, message, data_dir, capsys, no_model_opened
):
    assert main([data_dir if a == "DATA" else a for a in args]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize(
    "args, message",
    [
        (["rank", "docs.txt", "-q", "x", "--top-k", "many"], "argument --top-k: invalid int value"),
        (["eval", "data", "--backend", "tpu"], "argument --backend: invalid choice: 'tpu'"),
        (["serve", "--port", "http"], "argument --port: invalid int value"),
        (["train", "data", "--model", "m"], "the following arguments are required: --output"),
    ],
)
def test_a_usage_error_is_one_line_pointing_at_help(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    line = one_error_line(capsys)
    assert message in line and line.endswith(f"(see crossrank {args[0]} --help)")


def test_rerank_table_with_a_missing_model_fails_once_before_ray_starts(tmp_path):
    # As a user runs it: the whole stderr is one line (it used to be ~180 lines of Ray
    # tracebacks, the actors retrying the load forever).
    pytest.importorskip("ray")
    command = [sys.executable, "-m", "crossrank.cli", "rerank-table", str(_table(tmp_path))]
    command += ["-o", str(tmp_path / "out.jsonl"), "--model", MISSING_MODEL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and done.stdout == "", done.stderr
    assert_missing_model(done.stderr)
    assert not (tmp_path / "out.jsonl").exists()


def test_serve_model_errors_go_to_stderr_before_the_server_starts(tmp_path):
    pytest.importorskip("uvicorn")
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", MISSING_MODEL]
    done = subprocess.run(
        [*command, "--port", "0"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr  # no uvicorn start-up lines
    assert_missing_model(done.stderr)


def test_warnings_are_one_line_each(bert_dir, tmp_path):
    # The tiny test model takes 128 tokens: asking for 512 gives a note, as one line.
    command = [sys.executable, "-m", "crossrank.cli", "rank", str(_docs(tmp_path)), "-q", "panda"]
    done = subprocess.run(
        [*command, "--model", bert_dir, "--max-length", "512", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "crossrank: warning: max_length=512 is more than this model accepts (128 tokens); "
        "using 128."
    ]


def test_calibrate_asks_for_o_only_where_the_model_is_no_directory(tmp_path):
    from argparse import Namespace

    from crossrank.cli.calibrate import _output_path

    hub_model = Namespace(output=None, model="BAAI/bge-reranker-base")
    with pytest.raises(ValueError, match="is a hub id, not a local directory.* with -o"):
        _output_path(hub_model)
    assert _output_path(Namespace(output="c.json", model="BAAI/bge-reranker-base")) == "c.json"
    local = Namespace(output=None, model=str(tmp_path))
    assert _output_path(local) == str(tmp_path / "crossrank_calibration.json")
