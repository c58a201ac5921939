"""Runtimes that compute logits for a padded batch: torch, ONNX Runtime and OpenVINO.

A backend is chosen once, when the reranker is built, as an object with one call surface,
``logits(batch) -> Tensor (rows, k)``; the pipeline never asks which one it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Protocol

import torch


class Backend(Protocol):
    """What the pipeline needs of a runtime."""

    name: str
    dtype: torch.dtype
    model: object  # the torch model (on the meta device where another runtime holds the weights)

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor: ...


class OnnxBackend:
    """An onnxruntime session behind the backend interface (CPU, float32 or int8 weights)."""

    name = "onnx"
    dtype = torch.float32

    def __init__(self, session, model) -> None:
        self.session = session
        self.model = model
        self.path: Optional[Path] = getattr(session, "path", None)

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.session.logits(batch)


def build_backends(settings, family, checkpoint, on_dtype_change=None) -> List[Backend]:
    """Load the weights of ``checkpoint`` once and put them behind one backend per device.

    Replicas on CPU share the weights (a forward in inference mode changes nothing, so threads can
    run one model at once); each accelerator gets its own copy.
    """
    import copy

    from ..loading import load_weights
    from .torch import TorchBackend

    family.check_backend(settings.backend)
    if settings.backend == "openvino":
        from .openvino import require_openvino

        require_openvino()  # before the weights load: a missing extra fails fast
        if settings.quantize == "int8":
            from .openvino import require_nncf

            require_nncf()
    model = load_weights(checkpoint, family.auto_class(), settings.show_progress_bar)
    if settings.backend in ("onnx", "openvino"):
        from .onnx import OnnxModel, onnx_file

        encoder = family.encoder(settings.max_length, settings.query_max_length)
        onnx_quantize = settings.quantize if settings.backend == "onnx" else None
        path = onnx_file(model, encoder, settings.model, onnx_quantize, family.pad_token_id)
        model.to("meta")  # the runtime holds its own copy; keep the config, drop the weights
        if settings.backend == "openvino":
            from .openvino import OpenVinoBackend, OpenVinoModel, openvino_int8_file

            if settings.quantize == "int8":
                path = openvino_int8_file(
                    path, encoder, family.pad_token_id, settings.show_progress_bar
                )

            return [OpenVinoBackend(OpenVinoModel(path, settings.dtype), model, settings.dtype)]
        return [OnnxBackend(OnnxModel(path), model)]
    from .cpu_linear import use_onednn_linear, wanted

    onednn = (
        not settings.compile  # inductor's freezing picks its own kernels
        and any(device.type == "cpu" for device in settings.devices)
        and wanted(settings.dtype)
    )

    def prepared(loaded):
        if onednn:
            use_onednn_linear(loaded)  # float32 CPU inference only; see cpu_linear
        return loaded

    model = prepared(model)
    backends: List[Backend] = []
    for index, device in enumerate(settings.devices):
        shared = device.type == "cpu" and index > 0
        replica = backends[0].model if shared else (copy.deepcopy(model) if index else model)
        backends.append(
            TorchBackend(
                replica,
                family.forward,
                device,
                settings.dtype,
                reload=lambda: prepared(load_weights(checkpoint, family.auto_class())),
                on_dtype_change=on_dtype_change,
                compile_model=settings.compile,
            )
        )
    return backends


__all__ = ["Backend", "OnnxBackend", "build_backends"]
