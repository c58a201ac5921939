"""The ONNX export cache under faults: damaged files are made again, concurrent exports take turns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from crossrank import CrossrankWarning, ModelLoadError, Reranker
from crossrank.backends import onnx as onnx_backend
from crossrank.cli.commands import main
from crossrank.testing import BACKEND_PAIRS as LIST_PAIRS
from crossrank.testing import count_calls, save_model

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture
def model_dir(tmp_path):
    return save_model(tmp_path / "model", "bert")


def _export(model_dir, name="model.onnx"):
    return os.path.join(model_dir, onnx_backend.EXPORT_DIR_NAME, name)


def _truncate(path, keep=100):
    with open(path, "r+b") as stream:
        stream.truncate(keep)


@pytest.mark.parametrize("name, quantize", [("model.onnx", None), ("model.int8.onnx", "int8")])
def test_truncated_export_is_made_again_with_one_warning(model_dir, monkeypatch, name, quantize):
    first = Reranker(model_dir, max_length=48, backend="onnx", quantize=quantize)
    expected = first.compute_score(LIST_PAIRS)
    _truncate(_export(model_dir, name))
    made = count_calls(monkeypatch, onnx_backend, "quantize_int8" if quantize else "export_onnx")
    with pytest.warns(CrossrankWarning) as caught:
        again = Reranker(model_dir, max_length=48, backend="onnx", quantize=quantize)
    repairs = [w for w in caught if "damaged" in str(w.message)]
    assert len(repairs) == 1 and "\n" not in str(repairs[0].message)
    assert _export(model_dir, name) in str(repairs[0].message)
    assert len(made) == 1
    assert again.compute_score(LIST_PAIRS) == pytest.approx(expected, abs=1e-5)
    with warnings.catch_warnings():  # repaired for good: the next load is silent
        warnings.simplefilter("error", CrossrankWarning)
        Reranker(model_dir, max_length=48, backend="onnx", quantize=quantize)


def test_same_size_other_bytes_is_caught_by_the_hash(model_dir, monkeypatch):
    expected = Reranker(model_dir, max_length=48, backend="onnx").compute_score(LIST_PAIRS)
    path = _export(model_dir)
    data = bytearray(open(path, "rb").read())
    data[-200:-100] = bytes(100)  # inside the weights: onnxruntime would load it and score wrong
    open(path, "wb").write(bytes(data))
    exports = count_calls(monkeypatch, onnx_backend, "export_onnx")
    with pytest.warns(CrossrankWarning, match="damaged"):
        again = Reranker(model_dir, max_length=48, backend="onnx")
    assert len(exports) == 1
    assert again.compute_score(LIST_PAIRS) == pytest.approx(expected, abs=1e-5)


def test_copied_model_dir_reuses_its_export(model_dir, tmp_path, monkeypatch):
    expected = Reranker(model_dir, max_length=48, backend="onnx").compute_score(LIST_PAIRS)
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)  # new mtimes, same bytes
    os.utime(_export(copy), ns=(1, 1))
    exports = count_calls(monkeypatch, onnx_backend, "export_onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossrankWarning)
        got = Reranker(str(copy), max_length=48, backend="onnx").compute_score(LIST_PAIRS)
    assert exports == [] and got == pytest.approx(expected, abs=1e-6)
    meta = json.loads((copy / onnx_backend.EXPORT_DIR_NAME / "export.json").read_text())
    assert meta["files"]["model.onnx"]["mtime_ns"] == os.stat(_export(copy)).st_mtime_ns


def test_unloadable_file_is_one_clear_cli_error(model_dir, tmp_path, monkeypatch, capsys):
    Reranker(model_dir, max_length=48, backend="onnx")
    _truncate(_export(model_dir))
    # A file that passes the checks but onnxruntime cannot read: a clear error, not InvalidProtobuf.
    monkeypatch.setattr(onnx_backend.export_cache, "intact", lambda *args: True)
    with pytest.raises(ModelLoadError, match="delete .*crossrank-onnx to export the model again"):
        Reranker(model_dir, max_length=48, backend="onnx")
    docs = tmp_path / "docs.txt"
    docs.write_text("a panda\na snake\n")
    args = ["rank", "--model", model_dir, "--max-length", "48", "--backend", "onnx", "-q", "x"]
    assert main([*args, str(docs)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("crossrank: error: onnxruntime cannot load")


def test_damaged_export_is_repaired_through_the_cli(model_dir, tmp_path):
    Reranker(model_dir, max_length=48, backend="onnx")
    _truncate(_export(model_dir))
    docs = tmp_path / "docs.txt"
    docs.write_text("a panda\na snake\n")
    proc = subprocess.run(
        [sys.executable, "-m", "crossrank.cli", "rank", "--model", model_dir, "--max-length"]
        + ["48", "--backend", "onnx", "--no-progress", "-q", "panda", str(docs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "damaged" in proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 2


# A child process that exports (int8 too) and prints how many exports it made and its scores.
# SLOW_REPLACE makes it hold its half-written files for that many seconds before renaming them,
# the window in which a second process used to delete them.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from crossrank import Reranker
    from crossrank.backends import onnx as onnx_backend
    slow = float(os.environ.get("SLOW_REPLACE", "0"))
    real_replace = os.replace
    def replace(src, dst):
        if ".tmp-" in os.fspath(src) and os.fspath(src).endswith(".tmp-%d" % os.getpid()):
            time.sleep(slow)
        real_replace(src, dst)
    os.replace = replace
    made = []
    real_export = onnx_backend.export_onnx
    onnx_backend.export_onnx = lambda *a, **k: (made.append(1), real_export(*a, **k))[1]
    reranker = Reranker(sys.argv[1], max_length=48, backend="onnx", quantize="int8")
    pairs = [["what is a panda?", "a bear of china"], ["what is a panda?", "a snake"]]
    print(json.dumps({"exports": len(made), "scores": reranker.compute_score(pairs)}))
    """
)


def _child(model_dir, slow=0.0):
    env = dict(os.environ, SLOW_REPLACE=str(slow))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, model_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _results(procs):
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_second_process_waits_instead_of_deleting_the_first_ones_files(model_dir):
    first = _child(model_dir, slow=4.0)
    directory = os.path.join(model_dir, onnx_backend.EXPORT_DIR_NAME)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if os.path.isdir(directory) and any(".tmp-" in name for name in os.listdir(directory)):
            break  # the first process is mid-export: its half-written file is on disk
        time.sleep(0.05)
    second = _child(model_dir)
    one, two = _results([first, second])
    assert one["exports"] + two["exports"] == 1  # the second reused the first one's export
    assert one["scores"] == pytest.approx(two["scores"], abs=1e-6)
    assert sorted(n for n in os.listdir(directory) if "tmp" in n) == []


@pytest.mark.slow
def test_two_processes_started_together_export_once(model_dir):
    os.makedirs(os.path.join(model_dir, onnx_backend.EXPORT_DIR_NAME), exist_ok=True)
    one, two = _results([_child(model_dir), _child(model_dir)])
    assert one["exports"] + two["exports"] == 1
    assert one["scores"] == pytest.approx(two["scores"], abs=1e-6)
