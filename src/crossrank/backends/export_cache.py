"""The cache of exported files: a cross-process lock, and a record that tells a damaged file.

An export directory holds ``export.json`` (what was exported, and for each file its size, mtime and
SHA-256) next to the files. :func:`intact` trusts a file whose size and mtime are the recorded ones
(a truncated or rewritten file changes both) and hashes it otherwise, so a copied directory is
accepted and a damaged file is not. :func:`export_lock` serializes export and clean-up across
processes (``filelock``), so one process never deletes the file another is still writing.

>>> with export_lock(directory):                                            # doctest: +SKIP
...     meta = read_meta(directory)
...     if not intact(directory, "model.onnx", meta):
...         make_file(directory / "model.onnx"); record(directory, "model.onnx", meta)
...         write_meta(directory, meta)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

META_NAME = "export.json"
LOCK_NAME = "export.lock"
# Exporting a large model takes minutes on a slow CPU; a process that waits longer than this
# fails with a clear error instead of hanging (the holder may be stuck).
LOCK_TIMEOUT_S = 1800.0


def export_lock(directory: Path, timeout: float = LOCK_TIMEOUT_S):
    """A cross-process lock on ``directory``'s exports (a context manager).

    >>> with export_lock(Path("model/crossrank-onnx")):  # doctest: +SKIP
    ...     ...
    """
    try:
        from filelock import FileLock
    except ImportError as error:  # pragma: no cover - filelock comes with huggingface_hub
        raise ImportError(
            "backend='onnx' needs filelock, which is not installed: pip install crossrank[onnx]"
        ) from error
    return FileLock(os.fspath(directory / LOCK_NAME), timeout=timeout)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read a megabyte-sized block at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record(directory: Path, name: str, meta: dict) -> None:
    """Note ``name``'s size, mtime and hash in ``meta["files"]`` (call :func:`write_meta` after)."""
    path = directory / name
    stat = path.stat()
    meta.setdefault("files", {})[name] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": file_sha256(path),
    }


def intact(directory: Path, name: str, meta: dict) -> bool:
    """Whether ``name`` exists and is the file :func:`record` noted (same size and hash)."""
    files = meta.get("files")
    expected = files.get(name) if isinstance(files, dict) else None
    path = directory / name
    if not isinstance(expected, dict) or not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size != expected.get("size"):
        return False
    if stat.st_mtime_ns == expected.get("mtime_ns"):
        return True
    # Touched or copied: trust the content, not the timestamp.
    if file_sha256(path) != expected.get("sha256"):
        return False
    expected["mtime_ns"] = stat.st_mtime_ns
    return True


def recorded(meta: dict, name: str) -> bool:
    """Whether ``meta`` lists ``name`` (so a missing or different file is damage, not a first run)."""
    files = meta.get("files")
    return isinstance(files, dict) and name in files


def read_meta(directory: Path) -> dict:
    """``export.json`` as a dict; an empty dict when it is missing or unreadable."""
    try:
        meta = json.loads((directory / META_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def write_meta(directory: Path, meta: dict) -> None:
    """Write ``export.json`` atomically (temp file, then rename)."""
    tmp = directory / f"{META_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, directory / META_NAME)
