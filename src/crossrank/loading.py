"""Loading a checkpoint: local directory or hub id, a fast clear error when offline."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .errors import ModelLoadError, warn_once

DEFAULT_MODEL = "BAAI/bge-reranker-base"
DEFAULT_MAX_LENGTH = 512  # tokens per pair when neither the caller nor the checkpoint says
RUN_FILE = "crossrank-run.json"  # what `crossrank train` writes (train_state.MARKER)


def looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.endswith(("/", os.sep))
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


@dataclass
class Checkpoint:
    """An opened checkpoint: its tokenizer and config, read before (and without) the weights.

    ``location`` is the local directory or hub id to load from; ``options`` the
    ``from_pretrained`` keywords that worked for the tokenizer and config (e.g. the local cache).
    """

    name: str
    location: str
    tokenizer: Any
    config: Any
    options: Dict[str, Any] = field(default_factory=dict)


def open_checkpoint(model: str, trust_remote_code: bool = False) -> Checkpoint:
    """Tokenizer and config of ``model`` (a local directory or hub id); ModelLoadError if not.

    Reading the config first lets a model family refuse a checkpoint or a backend before any
    weights are loaded. A hub id is looked up in the local cache first, and an unreachable hub
    fails fast with the offline route (``--model PATH``).
    """
    from transformers import AutoTokenizer

    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a hub id or a local directory path, got {model!r}")
    local = os.path.isdir(os.path.expanduser(model))
    if not local and looks_like_path(model):
        raise ModelLoadError(
            f"model={model!r}: no such directory. Pass a directory that holds a Hugging Face "
            "checkpoint (config.json, weights, tokenizer files) or a hub id like "
            f"{DEFAULT_MODEL!r}."
        )
    location = os.path.expanduser(model) if local else model

    def opened(**options) -> Checkpoint:
        options["trust_remote_code"] = trust_remote_code
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
        config = _read_config(location, options)
        return Checkpoint(model, location, tokenizer, config, options)

    # "runs/x" may be a directory that is not there or a hub id: both are said, the directory first
    not_here = f"no such directory ({os.path.abspath(os.path.expanduser(model))})"
    try:
        if local:
            return opened()
        try:  # the local cache first: no network round trips when the model is already here
            return opened(local_files_only=True)
        except (OSError, ValueError):
            pass
        endpoint = unreachable_hub()
        if endpoint:
            raise ModelLoadError(
                f"cannot load model={model!r}: {not_here}, and as a hub id it is not in the local "
                f"Hugging Face cache and the hub ({endpoint}) is unreachable. Pass a local "
                "checkpoint directory (CLI: --model PATH)."
            )
        return opened()
    except (OSError, ValueError) as error:
        if isinstance(error, ModelLoadError):
            raise
        where = " from the local directory" if local else f": {not_here}, nor from the hub"
        raise ModelLoadError(
            f"could not load model={model!r}{where} ({first_line(error)}). "
            "Offline, pass a local checkpoint directory (CLI: --model PATH)."
        ) from error


def _read_config(location: str, options: Dict[str, Any]):
    """``AutoConfig``'s config, or for a model type transformers does not know whose network
    crossrank computes itself (FlagEmbedding's layer-wise rerankers) the config as written."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location, **options)
    except ValueError:
        from .families.layerwise_checkpoint import layerwise_kind, plain_config

        plain = {k: v for k, v in options.items() if k != "trust_remote_code"}
        config = plain_config(location, **plain)
        if layerwise_kind(config) is None:
            raise
        return config


def load_weights(checkpoint: Checkpoint, auto_class, show_progress: bool = False):
    """The model of ``checkpoint`` as ``auto_class`` (float32, eval mode), its head checked.

    A checkpoint without trained head weights (an embedding model such as all-MiniLM-L6-v2, a
    base encoder) would score with a randomly initialised head: noise. It is refused with the
    missing weights named and the way to make a reranker of it (``crossrank train``).
    """
    try:
        with quiet_loading(show_progress):
            model, info = auto_class.from_pretrained(
                checkpoint.location, output_loading_info=True, **checkpoint.options
            )
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load the weights of model={checkpoint.name!r} ({first_line(error)})"
        ) from error
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    prefix = getattr(model, "base_model_prefix", "") or ""
    head = [k for k in missing if not (prefix and k.startswith(prefix + "."))]
    if head:
        architectures = getattr(checkpoint.config, "architectures", None)
        raise ModelLoadError(
            f"model={checkpoint.name!r} has no trained reranking head: its weights lack "
            f"{', '.join(sorted(head)[:4])}{' ...' if len(head) > 4 else ''} (architectures="
            f"{architectures}), so crossrank would score with random weights. It looks like an "
            "embedding or base model; fine-tune it into a reranker first: `crossrank train "
            f"DATA_DIR --model {checkpoint.name} --output DIR`, then load DIR."
        )
    if missing:
        warn_once(
            f"missing-weights-{checkpoint.name}",
            f"model={checkpoint.name!r} lacks {len(missing)} weight(s) ({', '.join(missing[:3])}), "
            "which were initialised at random; scores may be off.",
        )
    return model.eval()


@contextmanager
def quiet_loading(show_progress: bool):
    """Hide transformers' per-load "Loading weights" bar and load-report unless progress is wanted."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    if not show_progress:
        hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # the missing-head case is reported by crossrank itself
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_on:
            hf_logging.enable_progress_bar()


def unreachable_hub() -> Optional[str]:
    """The hub's host when it cannot be reached (so loading would only retry and fail), else None.

    Behind a proxy the direct check says nothing, so it is skipped.
    """
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # pragma: no cover - very old huggingface_hub
        endpoint = "https://huggingface.co"
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError:
        return host


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def trained_max_length(model: object) -> Optional[int]:
    """The ``max_length`` a ``crossrank train`` checkpoint was trained at, or None.

    Read from ``crossrank-run.json`` (``config.max_length``) when ``model`` is a local directory
    holding one. A file that cannot be read or holds no valid length gives a one-time
    CrossrankWarning naming it, and None (the caller's default applies).
    """
    if not isinstance(model, (str, os.PathLike)):
        return None
    path = os.path.join(os.path.expanduser(os.fspath(model)), RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            run = json.load(stream)
    except (OSError, ValueError) as error:  # ValueError: not JSON, not UTF-8
        problem = f"cannot be read ({first_line(error)})"
    else:
        config = run.get("config") if isinstance(run, dict) else None
        length = config.get("max_length") if isinstance(config, dict) else None
        if isinstance(length, int) and not isinstance(length, bool) and length >= 16:
            return length
        problem = f"has no config.max_length int >= 16 (got {length!r:.40})"
    warn_once(
        f"trained-max-length-{path}",
        f"{path} {problem}; using max_length={DEFAULT_MAX_LENGTH}. Pass max_length= "
        "(CLI: --max-length) to choose the length.",
    )
    return None


def cap_max_length(max_length: int, tokenizer, config) -> int:
    """``max_length``, or the most tokens the model takes where that is less (with a note)."""
    limits = [getattr(tokenizer, "model_max_length", None)]
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "model_type", "") in (
        "roberta",
        "xlm-roberta",
        "camembert",
    ):
        positions -= 2  # RoBERTa-style position ids start after the padding index
    limits.append(positions)
    cap = min([m for m in limits if isinstance(m, int) and 0 < m < 1_000_000], default=max_length)
    if max_length > cap:
        warn_once(
            f"max-length-{cap}",
            f"max_length={max_length} is more than this model accepts ({cap} tokens); using {cap}.",
        )
        return cap
    return max_length
