"""OpenVINO backend: the cached ONNX export, compiled by OpenVINO for the CPU.

The file is the same ``model.onnx`` the ONNX Runtime backend uses (exported once, cached, see
:mod:`crossrank.backends.onnx`); OpenVINO reads it and compiles it for the CPU in float32 or, with
``dtype="bfloat16"``, with bfloat16 as the inference precision. A CPU without native bfloat16
(AVX512-BF16 or AMX) runs float32 instead, which crossrank says once. int8 would go through
OpenVINO's own quantizer (NNCF), which crossrank does not use (see the README's Speed section).
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..errors import ModelLoadError, warn_once

_INSTALL_HINT = "pip install crossrank[openvino]"
# OpenVINO's names for the precisions crossrank asks for
_PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}


def require_openvino():
    """Import openvino, or fail with the install command."""
    try:
        import openvino
    except ImportError as error:
        raise ImportError(
            f"backend='openvino' needs openvino, which is not installed: {_INSTALL_HINT}"
        ) from error
    return openvino


class OpenVinoModel:
    """An OpenVINO model compiled for the CPU that takes crossrank's padded batches.

    ``logits(batch)`` takes the dict of int64 tensors that :func:`crossrank.batching.collate`
    makes. Each call uses an inference request of its own (kept for reuse), so one instance
    serves many threads.

    >>> model = OpenVinoModel(onnx_file(torch_model, encoder, "path/to/model"))  # doctest: +SKIP
    >>> model.logits(collate(encoder.encode(["q"], ["p"]), 0))                   # doctest: +SKIP
    tensor([[0.73]])
    """

    def __init__(
        self, path: Path, dtype: torch.dtype = torch.float32, num_threads: Optional[int] = None
    ) -> None:
        ov = require_openvino()
        self.path = Path(path)
        config = {
            "INFERENCE_NUM_THREADS": num_threads or torch.get_num_threads(),
            "INFERENCE_PRECISION_HINT": _PRECISIONS[dtype],
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelLoadError(
                f"OpenVINO cannot load {self.path} ({type(error).__name__}: {error}); "
                f"delete {self.path.parent} to export the model again"
            ) from error
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        # What the CPU plugin really runs: "f32" where bf16 was asked on a CPU without it.
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type
        self.precision = getattr(precision, "get_type_name", lambda: str(precision))()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a padded batch, run in slices of about ``CHUNK_TOKENS`` tokens (as ONNX)."""
        from .onnx import CHUNK_TOKENS

        arrays = {name: batch[name].cpu().numpy() for name in self.input_names}
        rows, width = arrays[self.input_names[0]].shape
        step = max(1, CHUNK_TOKENS // max(width, 1))
        try:
            request = self._requests.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            outputs = [
                request.infer({k: v[i : i + step] for k, v in arrays.items()})[0].copy()
                for i in range(0, rows, step)
            ]
        finally:
            self._requests.put(request)
        return torch.from_numpy(np.concatenate(outputs)).float()


class OpenVinoBackend:
    """An OpenVINO model behind the backend interface (CPU, float32 or bfloat16)."""

    name = "openvino"

    def __init__(self, model: OpenVinoModel, torch_model, dtype: torch.dtype) -> None:
        self.session = model
        self.model = torch_model  # on the meta device: the config stays readable
        self.dtype = dtype
        self.path = model.path
        if _PRECISIONS[dtype] != model.precision:
            warn_once(
                f"openvino-precision-{_PRECISIONS[dtype]}",
                f"OpenVINO runs this model in {model.precision}, not {_PRECISIONS[dtype]}: this "
                "CPU has no native bfloat16 (AVX512-BF16 or AMX), so the scores are float32 ones.",
            )

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.session.logits(batch)

    def use_float32(self) -> bool:
        """The torch backend's fallback hook; OpenVINO keeps the precision it compiled with."""
        return False


__all__ = ["OpenVinoBackend", "OpenVinoModel", "require_openvino"]
