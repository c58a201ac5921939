"""Checkpoints and the output directory of ``crossrank train``: atomic saves, resume, overwrite.

A checkpoint is ``<output>/checkpoint-<step>/state.pt``: the weights, the optimizer state, every
random generator the run draws from (example order, negatives, dropout), the example queue, the
losses and evaluations so far and the budget clock spent. It is written into a hidden temporary
directory and renamed into place, so a kill at any moment leaves the previous checkpoint whole;
older checkpoints are removed after the rename. ``crossrank-run.json`` marks a directory as a
crossrank run, so a non-empty directory that is not one is never written into by accident.

>>> state = prepare_output(config)            # None: a fresh run; else the state to resume from  # doctest: +SKIP
>>> save_checkpoint(config, step, snapshot)                                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch

MARKER = "crossrank-run.json"
LOG = "training_log.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Settings that may differ between a run and its resumption: they do not change what is learned
# (the device only at float rounding: a run started on a GPU may finish on the CPU).
RESUMABLE_CHANGES = ("output_dir", "show_progress", "save_every", "resume", "overwrite", "device")


def prepare_output(config) -> Optional[dict]:
    """Check (and with ``overwrite`` clear) ``config.output_dir``; the state to resume, or None.

    Raises ``ValueError`` naming the directory when it is a file, holds files that are not a
    crossrank run (unless ``overwrite``), holds a run and neither ``resume`` nor ``overwrite`` is
    set, or when the checkpoint to resume was made with other settings.
    """
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {out} is a file, not a directory")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    # A marker alone: a run that stopped before its first checkpoint, nothing to keep.
    entries = [e for e in entries if e != MARKER and not e.startswith(".checkpoint-")] and entries
    is_run = (out / MARKER).is_file() or (out / LOG).is_file()
    state = None
    if entries and config.overwrite:
        _clear(out)
    elif entries and not is_run:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(
            f"output_dir {out} is not empty ({shown}) and is not a crossrank training run: "
            "pass --overwrite (overwrite=True) to delete its contents, or choose another directory"
        )
    elif entries and not config.resume:
        raise ValueError(
            f"output_dir {out} already holds a crossrank training run: pass --resume to continue "
            "it from its last checkpoint or --overwrite to start again"
        )
    elif entries:
        state = _resume_state(out, config)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".checkpoint-*"):  # half-written by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    _write_json(out / MARKER, {"config": asdict(config)})
    return state


def save_checkpoint(config, step: int, state: dict) -> Path:
    """Write ``state`` as ``checkpoint-<step>`` atomically and remove older checkpoints."""
    out = Path(config.output_dir)
    final = out / f"checkpoint-{step:07d}"
    tmp = out / f".checkpoint-{step:07d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / "state.pt", "wb") as stream:
        torch.save(state, stream)
        stream.flush()
        os.fsync(stream.fileno())  # on disk before the rename makes it the checkpoint
    _write_json(tmp / "checkpoint.json", {"step": step, "config": asdict(config)})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for older in checkpoints(out):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)
    return final


def checkpoints(out: Path) -> list:
    """Complete checkpoint directories in ``out``, oldest first."""
    found = []
    for path in Path(out).glob("checkpoint-*"):
        match = _CHECKPOINT.match(path.name)
        if match and (path / "state.pt").is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def remove_checkpoints(out: Path) -> None:
    """Delete the checkpoints once the final model is saved (they hold optimizer state too)."""
    for path in checkpoints(out):
        shutil.rmtree(path, ignore_errors=True)


def readable_modes(out: Path) -> None:
    """Give the files in ``out`` the usual umask-based modes (safetensors writes them 0600)."""
    probe = out / f".mode-probe-{os.getpid()}"
    probe.touch()
    mode = probe.stat().st_mode & 0o777  # what open() makes under this process's umask
    probe.unlink()
    for path in out.iterdir():
        if path.is_file() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)


def snapshot(model, optimizer, examples, losses, evals, times) -> dict:
    """Everything a resumed run needs to continue exactly where this one is."""
    state = {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),  # dropout on the CPU
        "examples_rng": examples.rng.getstate(),  # example order and negatives
        "order": list(examples.order),
        "losses": list(losses),
        "evals": list(evals),
        "seconds": times[0],
        "cpu_seconds": times[1],
    }
    if next(model.parameters()).is_cuda:  # dropout on a GPU draws from its own generator
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict, model, optimizer, examples):
    """Load a checkpoint's state into a freshly built run; its step, losses, evals and times."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and next(model.parameters()).is_cuda:
        # the same GPUs: exactly where it stopped; a run moved to the CPU continues from its own
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    version, internal, gauss = state["examples_rng"]
    examples.rng.setstate((version, tuple(internal), gauss))
    examples.order = list(state["order"])
    return (
        state["step"],
        list(state["losses"]),
        list(state["evals"]),
        (state["seconds"], state["cpu_seconds"]),
    )


def _resume_state(out: Path, config) -> Optional[dict]:
    found = checkpoints(out)
    if not found:
        if (out / LOG).is_file():
            raise ValueError(
                f"output_dir {out} holds a finished run (training_log.json) and no checkpoint to "
                "resume: pass --overwrite to train again"
            )
        return None  # killed before its first checkpoint: start from step 0
    state = torch.load(found[-1] / "state.pt", map_location="cpu", weights_only=True)
    saved, now = state["config"], asdict(config)
    changed = sorted(
        k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, now[k]) != now[k]
    )
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {found[-1]}: it was trained with other settings ({details}); "
            "use the same settings, or --overwrite to start again"
        )
    return state


def _clear(out: Path) -> None:
    if (out / ".git").exists() or out.resolve() in (Path.home().resolve(), Path("/")):
        raise ValueError(
            f"refusing to clear output_dir {out}: it is a repository or home directory"
        )
    for path in out.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
