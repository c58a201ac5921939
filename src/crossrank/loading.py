"""Loading a checkpoint: local directory or hub id, a fast clear error when offline."""

from __future__ import annotations

import os
from typing import Optional

from .errors import ModelLoadError, warn_once
from .families import decoder as llm

DEFAULT_MODEL = "BAAI/bge-reranker-base"


def looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.endswith(("/", os.sep))
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def load_model(model: str, trust_remote_code: bool):
    """Tokenizer and model of ``model`` (a local directory or hub id); ModelLoadError if not."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if not isinstance(model, str) or not model.strip():
        raise TypeError(f"model must be a hub id or a local directory path, got {model!r}")
    local = os.path.isdir(os.path.expanduser(model))
    if not local and looks_like_path(model):
        raise ModelLoadError(
            f"model={model!r}: no such directory. Pass a directory that holds a Hugging Face "
            "checkpoint (config.json, weights, tokenizer files) or a hub id like "
            f"{DEFAULT_MODEL!r}."
        )
    path = os.path.expanduser(model) if local else model

    def from_pretrained(**kwargs):
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code, **kwargs
        )
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        model_class = (
            AutoModelForCausalLM if llm.is_causal_lm(config) else AutoModelForSequenceClassification
        )
        hf_model = model_class.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        return tokenizer, hf_model

    try:
        if local:
            return from_pretrained()
        try:  # the local cache first: no network round trips when the model is already here
            return from_pretrained(local_files_only=True)
        except (OSError, ValueError):
            pass
        endpoint = unreachable_hub()
        if endpoint:
            raise ModelLoadError(
                f"cannot load model={model!r}: it is not in the local Hugging Face cache and the hub "
                f"({endpoint}) is unreachable. Offline, pass a local checkpoint directory "
                "(CLI: --model PATH)."
            )
        return from_pretrained()
    except (OSError, ValueError) as error:
        if isinstance(error, ModelLoadError):
            raise
        where = "the local directory" if local else "the Hugging Face hub or its local cache"
        raise ModelLoadError(
            f"could not load model={model!r} from {where} ({first_line(error)}). "
            "Offline, pass a local checkpoint directory (CLI: --model PATH)."
        ) from error


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


def check_head(model, name: str) -> int:
    num_labels = getattr(model.config, "num_labels", None)
    if num_labels not in (1, 2):
        raise ModelLoadError(
            f"model={name!r} has a classification head with {num_labels} outputs; a cross-encoder "
            "reranker needs 1 (relevance logit) or 2 (not relevant / relevant)."
        )
    return num_labels


def resolve_prompt_format(model, tokenizer, prompt_format, instruction, name: str) -> Optional[str]:
    """The decoder LLM prompt family of ``model``; None for a cross-encoder."""
    if llm.is_causal_lm(model.config):
        return llm.detect_prompt_format(model.config, tokenizer, prompt_format, name)
    for argument, value in (("instruction", instruction), ("prompt_format", prompt_format)):
        if value is not None:
            raise ValueError(
                f"{argument}= applies to decoder LLM rerankers (Qwen3-Reranker, "
                f"bge-reranker-v2-gemma); model={name!r} is a cross-encoder, leave it out"
            )
    return None


def cap_max_length(max_length: int, tokenizer, model) -> int:
    limits = [getattr(tokenizer, "model_max_length", None)]
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and getattr(model.config, "model_type", "") in (
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
