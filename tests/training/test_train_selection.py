"""``crossrank train`` keeps the best held-out evaluation's weights, stops early, resumes exactly."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from crossrank.cli.commands import main  # noqa: E402
from crossrank.testing import save_model, write_tiny_beir  # noqa: E402
from crossrank.testing import tiny_train_config as _config  # noqa: E402
from crossrank.training import state as train_state  # noqa: E402
from crossrank.training.config import TrainConfig  # noqa: E402
from crossrank.training.loop import train  # noqa: E402
from crossrank.training.selection import Selection  # noqa: E402

# On the tiny dataset this learning rate reaches the best held-out nDCG@10 within a few steps and
# never beats it afterwards, so the best step is not the last one.
CURVE = dict(max_steps=16, eval_every=2, learning_rate=2e-2, seed=11)


@pytest.fixture
def tiny_beir(tmp_path):
    return str(write_tiny_beir(tmp_path / "tiny"))


@pytest.fixture
def base_dir(tmp_path):
    return save_model(tmp_path / "base", "bert", seed=3)


def _saved(out):
    return load_file(os.path.join(out, "model.safetensors"))


def _assert_same(saved, expected):
    assert saved.keys() <= expected.keys()
    for name in saved:
        assert torch.equal(saved[name], expected[name].to(saved[name].dtype)), name


def _record_checkpoints(monkeypatch):
    """Every checkpoint's state by step, as the run saves it."""
    states = {}
    real_save = train_state.save_checkpoint

    def recording(config, step, state):
        states[step] = state
        return real_save(config, step, state)

    monkeypatch.setattr(train_state, "save_checkpoint", recording)
    return states


def _first_best(evals, key="model"):
    values = [e[key] for e in evals]
    return evals[values.index(max(values))]


def _stop_index(values, patience, min_delta=0.0):
    """The evaluation at which ``patience`` in a row have not beaten the best by > min_delta."""
    best, waited = values[0], 0
    for index, value in enumerate(values[1:], 1):
        waited = 0 if value > best + min_delta else waited + 1
        best = max(best, value)
        if waited == patience:
            return index
    return None


def _evaluation(step, model, fused=0.9):
    return {"step": step, "bm25": 0.5, "model": model, "fused@0.5": fused}


def test_selection_keeps_the_first_best_and_counts_patience():
    config = TrainConfig("m", "d", "o", early_stopping_patience=2, early_stopping_min_delta=0.05)
    selection = Selection(config)
    model = torch.nn.Linear(2, 1)
    stops = []
    for step, value in ((0, 0.5), (1, 0.6), (2, 0.62), (3, 0.6), (4, 0.62)):
        with torch.no_grad():
            model.weight.fill_(step)
        stops.append(selection.offer(_evaluation(step, value), model))
    # 0.62 beats 0.6 (kept) but not by more than 0.05 (patience counts it); a tie is not kept
    assert stops == [False, False, False, True, True]
    assert selection.best_step == 2 and selection.waited == 3
    assert selection.restore_best(model, 4) == 2 and model.weight.eq(2).all()

    fused = Selection(TrainConfig("m", "d", "o", select_metric="fused", keep="last"))
    for step, value in ((0, 0.9), (1, 0.95), (2, 0.93)):
        fused.offer(_evaluation(step, 0.5 + step / 10, fused=value), model)
    assert fused.best_step == 1 and fused.weights is None  # keep="last" copies no weights
    assert fused.restore_best(model, 2) == 2 and model.weight.eq(2).all()


def test_the_best_evaluations_weights_are_saved(tiny_beir, base_dir, tmp_path, monkeypatch):
    states = _record_checkpoints(monkeypatch)
    best = train(_config(tiny_beir, base_dir, tmp_path / "best", save_every=2, **CURVE))
    expected = _first_best(best.evals)
    assert 0 < expected["step"] < best.steps == 16  # the case this test is about
    assert best.best == expected and best.best_step == best.kept_step == expected["step"]
    _assert_same(_saved(tmp_path / "best"), states[best.best_step]["model"])
    # the checkpoint at the best step does not hold the weights twice; later ones hold them
    assert states[best.best_step]["selection"]["weights"] is None
    _assert_same(_saved(tmp_path / "best"), states[best.steps - 2]["selection"]["weights"])
    log = json.loads((tmp_path / "best" / "training_log.json").read_text())
    assert log["best_step"] == log["kept_step"] == best.best_step and log["best"] == expected

    last = train(_config(tiny_beir, base_dir, tmp_path / "last", keep="last", **CURVE))
    assert last.losses == best.losses and last.evals == best.evals  # choosing changes no training
    assert last.best_step == best.best_step and last.kept_step == 16
    saved_last = _saved(tmp_path / "last")
    _assert_same(saved_last, last.model.state_dict())
    assert any(not torch.equal(saved_last[k], _saved(tmp_path / "best")[k]) for k in saved_last)


def test_without_held_out_queries_the_last_weights_are_kept(tiny_beir, base_dir, tmp_path):
    result = train(_config(tiny_beir, base_dir, tmp_path / "out", max_steps=3, eval_queries=0))
    assert result.evals == [] and result.best_step is None and result.kept_step == 3
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["best_step"] is None and log["best"] is None and log["kept_step"] == 3


def test_early_stopping_after_patience_evaluations(tiny_beir, base_dir, tmp_path):
    full = train(_config(tiny_beir, base_dir, tmp_path / "full", **CURVE))
    stop = _stop_index([e["model"] for e in full.evals], patience=2)
    assert stop is not None and full.evals[stop]["step"] < 16  # the case this test is about
    early = train(
        _config(tiny_beir, base_dir, tmp_path / "early", early_stopping_patience=2, **CURVE)
    )
    assert early.stopped_by == "early_stopping" and early.steps == full.evals[stop]["step"]
    assert early.evals == full.evals[: stop + 1]  # no extra evaluation after the stop
    assert early.losses == full.losses[: early.steps]  # same schedule up to the stop
    assert early.best_step == full.best_step == early.kept_step

    # nDCG@10 cannot improve by more than 1: exactly `patience` evaluations after step 0
    never = train(
        _config(
            tiny_beir,
            base_dir,
            tmp_path / "never",
            early_stopping_patience=3,
            early_stopping_min_delta=1.0,
            **CURVE,
        )
    )
    assert never.steps == 6 and [e["step"] for e in never.evals] == [0, 2, 4, 6]
    assert never.best == _first_best(never.evals)
    log = json.loads((tmp_path / "never" / "training_log.json").read_text())
    assert log["stopped_by"] == "early_stopping" and log["steps"] == 6


class Crash(Exception):
    pass


def test_resume_keeps_best_tracking_teacher_and_patience(
    tiny_beir, base_dir, tmp_path, monkeypatch
):
    teacher = save_model(tmp_path / "teacher", "bert", seed=5)
    settings = dict(
        save_every=2, early_stopping_patience=3, teacher=teacher, distill_weight=0.5, **CURVE
    )
    whole = train(_config(tiny_beir, base_dir, tmp_path / "whole", **settings))
    crash_at = whole.best_step + 2  # the best weights are no longer the model's; patience 1
    assert whole.stopped_by == "early_stopping" and crash_at < whole.steps  # the case at hand

    real_save = train_state.save_checkpoint

    def save_then_crash(config, step, state):
        path = real_save(config, step, state)
        if step == crash_at:
            raise Crash
        return path

    monkeypatch.setattr(train_state, "save_checkpoint", save_then_crash)
    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(_config(tiny_beir, base_dir, out, **settings))
    monkeypatch.setattr(train_state, "save_checkpoint", real_save)

    resumed = train(_config(tiny_beir, base_dir, out, resume=True, **settings))
    assert resumed.resumed_from == crash_at and resumed.stopped_by == "early_stopping"
    assert resumed.steps == whole.steps and resumed.losses == pytest.approx(whole.losses, abs=1e-6)
    assert resumed.evals == whole.evals
    assert resumed.best_step == resumed.kept_step == whole.best_step
    _assert_same(_saved(out), _saved(tmp_path / "whole"))


def test_cli_options_reach_the_run(tiny_beir, base_dir, tmp_path, capsys):
    teacher = save_model(tmp_path / "teacher", "bert", seed=5)
    out = tmp_path / "cli"
    args = ["train", tiny_beir, "--model", base_dir, "--output", str(out), "--max-steps", "2"]
    args += ["--max-length", "32", "--negatives", "3", "--eval-queries", "4", "--no-progress"]
    options = ["--teacher", teacher, "--distill-loss", "margin-mse", "--distill-weight", "0.25"]
    options += ["--distill-temperature", "2", "--keep", "last", "--select-metric", "fused"]
    options += ["--early-stopping-patience", "5", "--early-stopping-min-delta", "0.01"]
    assert main(args + options + ["--eval-every", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    log = json.loads((out / "training_log.json").read_text())
    assert summary["kept_step"] == 2 and summary["best"] == _first_best(log["evals"], "fused@0.5")
    config = log["config"]
    assert config["teacher"] == teacher and config["distill_loss"] == "margin-mse"
    assert config["distill_weight"] == 0.25 and config["distill_temperature"] == 2.0
    assert config["keep"] == "last" and config["select_metric"] == "fused"
    assert config["early_stopping_patience"] == 5 and config["early_stopping_min_delta"] == 0.01

    bad = args + ["--overwrite", "--distill-weight", "1.5"]
    assert main(bad) == 2
    assert "distill_weight must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--early-stopping-patience", "2", "--eval-every", "0"]) == 2
    assert "early_stopping_patience needs held-out evaluations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args + ["--keep", "first"])
    assert "invalid choice: 'first'" in capsys.readouterr().err
