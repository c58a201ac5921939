"""Checks of what callers pass in: each error names the argument and says what to do."""

from __future__ import annotations

import math
from typing import List

import torch

from .devices import parse_dtype
from .families import decoder as llm
from .windows import LONG_DOCUMENT_MODES


def check_long_document_options(long_documents, stride) -> None:
    if long_documents not in LONG_DOCUMENT_MODES:
        raise ValueError(f"long_documents must be 'truncate' or 'maxp', got {long_documents!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise ValueError(
            f"stride must be an int >= 0 (tokens shared by consecutive windows), got {stride!r}"
        )


def check_speed_options(backend, quantize, cache_size) -> None:
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if backend == "onnx":
        from .backends.onnx import require_onnxruntime

        require_onnxruntime()  # before the model loads: a missing extra fails fast
    if quantize is not None and backend != "onnx":
        raise ValueError(
            f"quantize={quantize!r} needs backend='onnx' (pip install crossrank[onnx]); "
            "the torch backend runs the model as loaded"
        )
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ValueError(
            f"cache_size must be an int >= 0 (0 turns the cache off), got {cache_size!r}"
        )


def onnx_device(requested, resolved: torch.device, dtype) -> torch.device:
    """backend='onnx' runs on CPU in float32: 'auto' means CPU, anything else is an error."""
    if dtype is not None and parse_dtype(dtype) != torch.float32:
        raise ValueError(
            f"backend='onnx' runs float32 (or int8 with quantize='int8'), got dtype={dtype!r}"
        )
    if resolved.type == "cpu":
        return resolved
    if requested is None or requested == "auto":
        return torch.device("cpu")
    raise ValueError(
        f"backend='onnx' runs on CPU (onnxruntime's CPUExecutionProvider), got device={requested!r}; "
        "use device='cpu' or backend='torch'"
    )


def check_llm_options(instruction, prompt_format) -> None:
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise ValueError(f"instruction must be a non-empty str or None, got {instruction!r}")
    if prompt_format is not None and prompt_format not in llm.PROMPT_FORMATS:
        raise ValueError(
            f"prompt_format must be one of {llm.PROMPT_FORMATS} or None, got {prompt_format!r}"
        )


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def check_query(query) -> None:
    if query is None or not isinstance(query, str):
        raise TypeError(f"query must be a non-empty str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty; pass the question or search text to rank documents for")


def check_documents(documents) -> List[str]:
    if documents is None or isinstance(documents, (str, bytes)):
        raise TypeError(
            "documents must be a list of str (one entry per document), "
            f"got {type(documents).__name__}"
        )
    try:
        texts = list(documents)
    except TypeError:
        raise TypeError(
            f"documents must be a list of str, got {type(documents).__name__}"
        ) from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"documents[{i}] is {type(text).__name__}, expected str; pass document texts "
                "(e.g. [d.page_content for d in docs])"
            )
    return texts


def is_pair(item) -> bool:
    return (
        isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(s, str) for s in item)
    )


def as_pairs(sentence_pairs) -> tuple:
    """→ (single, list of (query, passage)) with a clear error for anything else."""
    if (
        sentence_pairs is None
        or isinstance(sentence_pairs, (str, bytes))
        or not isinstance(sentence_pairs, (list, tuple))
    ):
        raise TypeError(
            "sentence_pairs must be a [query, passage] pair or a list of such pairs, "
            f"got {type(sentence_pairs).__name__}"
        )
    if len(sentence_pairs) == 0:
        return False, []
    if isinstance(sentence_pairs[0], str):
        if not is_pair(sentence_pairs):
            raise TypeError(
                "sentence_pairs looks like one pair but is not two strings: pass "
                "[query, passage] or a list of [query, passage] pairs"
            )
        return True, [tuple(sentence_pairs)]
    pairs = []
    for i, item in enumerate(sentence_pairs):
        if not is_pair(item):
            raise TypeError(
                f"sentence_pairs[{i}] must be a [query, passage] pair of two str, got {item!r:.80}"
            )
        pairs.append((item[0], item[1]))
    return False, pairs
