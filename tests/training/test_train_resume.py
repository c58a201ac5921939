"""``crossrank train`` checkpoints: killed and resumed equals uninterrupted; the output dir policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

from safetensors.torch import load_file  # noqa: E402

from crossrank.cli.commands import main  # noqa: E402
from crossrank.testing import save_model, write_tiny_beir  # noqa: E402
from crossrank.testing import tiny_train_config as _config  # noqa: E402
from crossrank.training import state as train_state  # noqa: E402
from crossrank.training.loop import train  # noqa: E402


@pytest.fixture
def tiny_beir(tmp_path):
    return str(write_tiny_beir(tmp_path / "tiny"))


@pytest.fixture
def base_dir(tmp_path):
    return save_model(tmp_path / "base", "bert", seed=3)


def _weights(out):
    return load_file(os.path.join(out, "model.safetensors"))


def _same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert (wa[name] - wb[name]).abs().max().item() <= 1e-6, name


class Crash(Exception):
    pass


def test_crash_after_a_checkpoint_resumes_to_the_same_run(
    tiny_beir, base_dir, tmp_path, monkeypatch
):
    settings = dict(max_steps=12, save_every=4, eval_every=4, seed=11)
    whole = train(_config(tiny_beir, base_dir, tmp_path / "whole", **settings))

    saved = []
    real_save = train_state.save_checkpoint

    def save_then_crash(config, step, state):
        path = real_save(config, step, state)
        saved.append(step)
        if step == 8:
            raise Crash  # dies right after its second checkpoint
        return path

    monkeypatch.setattr(train_state, "save_checkpoint", save_then_crash)
    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(_config(tiny_beir, base_dir, out, **settings))
    assert saved == [4, 8]
    assert [p.name for p in train_state.checkpoints(out)] == ["checkpoint-0000008"]
    assert not (out / "training_log.json").exists()
    monkeypatch.setattr(train_state, "save_checkpoint", real_save)

    resumed = train(_config(tiny_beir, base_dir, out, resume=True, **settings))
    assert resumed.resumed_from == 8 and resumed.steps == whole.steps == 12
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-6)
    assert resumed.evals == whole.evals
    _same_weights(out, tmp_path / "whole")
    assert train_state.checkpoints(out) == []  # removed once the final model is saved
    log = json.loads((out / "training_log.json").read_text())
    assert log["resumed_from"] == 8 and log["steps"] == 12


def test_foreign_output_is_refused_unless_overwrite(tiny_beir, base_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "pytorch_model.bin").write_bytes(b"stale weights of another model")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"output_dir .*out is not empty .*--overwrite"):
        train(_config(tiny_beir, base_dir, out, max_steps=2))
    assert (out / "notes.txt").read_text() == "mine"  # untouched
    train(_config(tiny_beir, base_dir, out, max_steps=2, overwrite=True))
    assert not (out / "pytorch_model.bin").exists() and not (out / "notes.txt").exists()
    assert (out / "model.safetensors").is_file()


def test_existing_run_needs_resume_or_overwrite(tiny_beir, base_dir, tmp_path):
    out = tmp_path / "run"
    train(_config(tiny_beir, base_dir, out, max_steps=2))
    with pytest.raises(ValueError, match="already holds a crossrank training run: pass --resume"):
        train(_config(tiny_beir, base_dir, out, max_steps=2))
    with pytest.raises(ValueError, match="finished run .* pass --overwrite"):
        train(_config(tiny_beir, base_dir, out, max_steps=2, resume=True))
    assert train(_config(tiny_beir, base_dir, out, max_steps=3, overwrite=True)).steps == 3


def test_resume_with_other_settings_is_refused(tiny_beir, base_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = train_state.save_checkpoint

    def save_then_crash(config, step, state):
        real_save(config, step, state)
        raise Crash

    monkeypatch.setattr(train_state, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        train(_config(tiny_beir, base_dir, out, max_steps=6, save_every=2))
    monkeypatch.setattr(train_state, "save_checkpoint", real_save)
    with pytest.raises(ValueError, match=r"learning_rate: 0\.002 -> 0\.001"):
        train(_config(tiny_beir, base_dir, out, max_steps=6, resume=True, learning_rate=1e-3))


def test_bad_save_every_is_named(tiny_beir, base_dir, tmp_path):
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="save_every must be"):
            train(_config(tiny_beir, base_dir, tmp_path / "x", save_every=bad))


def test_saved_files_have_the_usual_modes(tiny_beir, base_dir, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "modes"
        train(_config(tiny_beir, base_dir, out, max_steps=1))
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == "0o644" and set(modes.values()) == {"0o644"}, modes


def test_cli_refuses_a_foreign_output(tiny_beir, base_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    out.mkdir()
    (out / "pytorch_model.bin").write_bytes(b"x")
    args = ["train", tiny_beir, "--model", base_dir, "--output", str(out), "--max-steps", "1"]
    args += ["--max-length", "32", "--negatives", "3", "--eval-queries", "0", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is not empty (pytorch_model.bin)" in err and "--overwrite" in err
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "pytorch_model.bin").exists()


def _command(data, base, out):
    return [
        sys.executable, "-m", "crossrank.cli", "train", data, "--model", base, "--output", str(out),
        "--max-steps", "40", "--save-every", "5", "--max-length", "32", "--negatives", "3",
        "--negatives-depth", "10", "--queries-per-step", "4", "--lr", "2e-3",
        "--eval-queries", "4", "--eval-every", "20", "--eval-top-n", "5", "--seed", "5",
        "--no-progress",
    ]  # fmt: skip


def _run(command, timeout=600):
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkilled_run_resumes_like_an_uninterrupted_one(tiny_beir, base_dir, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(tiny_beir, base_dir, killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if killed.is_dir() and train_state.checkpoints(killed):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # no clean-up: as if the machine went away
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-3000:]
    assert not (killed / "training_log.json").exists()
    last = train_state.checkpoints(killed)[-1]
    step = int(last.name.split("-")[1])

    resumed = _run(_command(tiny_beir, base_dir, killed) + ["--resume"])
    whole = _run(_command(tiny_beir, base_dir, tmp_path / "whole"))
    assert resumed["resumed_from"] == step >= 5 and resumed["steps"] == whole["steps"] == 40
    logs = [json.loads((d / "training_log.json").read_text()) for d in (killed, tmp_path / "whole")]
    assert logs[0]["losses"] == pytest.approx(logs[1]["losses"], abs=1e-5)
    assert logs[0]["evals"] == logs[1]["evals"]
    _same_weights(killed, tmp_path / "whole")
