"""Runtimes that compute logits for a padded batch: torch, ONNX Runtime and OpenVINO.

A backend is chosen once, when the reranker is built, from the registry of backend classes
(:mod:`crossrank.backends.registry`: what each supports, the extra it needs, how it builds); what
it builds has one call surface, ``logits(batch) -> Tensor (rows, k)`` (:class:`Runtime`), so the
pipeline never asks which one it has. Importing this package imports no torch; the runtime
classes below load on first use.

>>> from crossrank.backends import backend_names
>>> backend_names()
('torch', 'onnx', 'openvino')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .base import Runtime
from .registry import Backend, backend_names, get_backend

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "OnnxBackend": ".onnx",
        "OpenVinoBackend": ".openvino",
        "TorchBackend": ".torch",
        "build_backends": ".registry",
    },
    globals(),
)

if TYPE_CHECKING:  # pragma: no cover
    from .onnx import OnnxBackend
    from .openvino import OpenVinoBackend
    from .registry import build_backends
    from .torch import TorchBackend

__all__ = [
    "Backend",
    "OnnxBackend",
    "OpenVinoBackend",
    "Runtime",
    "TorchBackend",
    "backend_names",
    "build_backends",
    "get_backend",
]
