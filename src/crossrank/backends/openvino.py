"""OpenVINO backend: the cached ONNX export, compiled by OpenVINO for the CPU.

The file is the same ``model.onnx`` the ONNX Runtime backend uses (exported once, cached, see
:mod:`crossrank.backends.onnx`); OpenVINO reads it and compiles it for the CPU in float32 or, with
``dtype="bfloat16"``, with bfloat16 as the inference precision. A CPU without native bfloat16
(AVX512-BF16 or AMX) runs float32 instead, which crossrank says once.

``quantize="int8"`` quantizes that export statically with OpenVINO's own quantizer (NNCF): int8
weights and int8 activations whose scales are fixed beforehand from calibration pairs (SmoothQuant
and bias correction included), saved as ``model.openvino-int8.xml``/``.bin`` beside the ONNX file
and made once. On a CPU with AVX512-VNNI it was the fastest path measured (see the README's Speed
section); ONNX Runtime's int8 (``backend="onnx"``) needs no calibration but computes activation
scales on every call.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ModelLoadError, warn_once

INT8_XML = "model.openvino-int8.xml"
INT8_BIN = "model.openvino-int8.bin"
# Calibration pairs go through the model a few at a time (one NNCF sample per batch).
_CALIBRATION_BATCH = 4
# OpenVINO's names for the precisions crossrank asks for
_PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}


def openvino_int8_file(
    onnx_path: Path, encoder, pad_id: int = 0, show_progress_bar: bool = False
) -> Path:
    """The statically quantized int8 OpenVINO model made from ``onnx_path``: cached, else made.

    ``onnx_path`` is the fp32 export :func:`crossrank.backends.onnx.onnx_file` returned (its
    directory holds the fingerprint, so new weights drop this file too); ``encoder`` makes the
    calibration inputs from :func:`crossrank.backends.int8_pairs.calibration_pairs`. A damaged
    file is made again with a warning, and processes take turns (the export directory's lock).
    """
    from . import export_cache
    from .onnx import _ensure

    directory = Path(onnx_path).parent
    target = directory / INT8_XML
    with export_cache.export_lock(directory):
        meta = export_cache.read_meta(directory)
        _ensure(
            directory,
            (INT8_XML, INT8_BIN),
            meta,
            lambda: quantize_int8(
                Path(onnx_path), target, encoder, pad_id, show_progress_bar=show_progress_bar
            ),
        )
    return target


def quantize_int8(
    source: Path,
    target: Path,
    encoder,
    pad_id: int = 0,
    pairs: Optional[Sequence[Tuple[str, str]]] = None,
    show_progress_bar: bool = False,
) -> None:
    """Quantize the ONNX model ``source`` to int8 with NNCF and save it as OpenVINO IR ``target``.

    ``pairs`` (query, passage) calibrate the activation scales; by default the pairs of
    :mod:`crossrank.backends.int8_pairs`. ``encoder`` (a ``PairEncoder``) tokenizes them as the
    reranker will. Weights get int8 scales per output channel, activations per tensor
    (``ModelType.TRANSFORMER``: SmoothQuant first, attention's softmax and LayerNorms stay float).
    NNCF's progress bars go to stderr with ``show_progress_bar``, else nowhere (never to stdout,
    which may carry a command's JSON).

    >>> quantize_int8(Path("m/crossrank-onnx/model.onnx"), Path("m/int8.xml"), encoder)  # doctest: +SKIP
    """
    import nncf
    import openvino as ov

    from ..batching import collate
    from .int8_pairs import calibration_pairs

    pairs = list(pairs) if pairs is not None else calibration_pairs()
    if not pairs:
        raise ValueError("pairs must hold at least one (query, passage) pair to calibrate with")
    features = encoder.encode([q for q, _ in pairs], [p for _, p in pairs])
    samples = []
    for start in range(0, len(features), _CALIBRATION_BATCH):
        batch = collate(features[start : start + _CALIBRATION_BATCH], pad_id)
        samples.append({name: tensor.numpy() for name, tensor in batch.items()})
    core = ov.Core()
    model = core.read_model(os.fspath(source))
    names = {port.get_any_name() for port in model.inputs}
    samples = [{k: v for k, v in sample.items() if k in names} for sample in samples]
    with _nncf_output(show_progress_bar):
        quantized = nncf.quantize(
            model,
            nncf.Dataset(samples),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(samples),
            advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=_overflow_fix()),
        )
    tmp = target.with_name(f"{target.stem}.tmp-{os.getpid()}.xml")
    ov.save_model(quantized, os.fspath(tmp))  # writes the .bin beside it
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)


def _overflow_fix():
    """7-bit weights in every layer on x86 CPUs without VNNI, NNCF's default elsewhere.

    Without VNNI (AVX2 only) int8 kernels add pairs of u8 x s8 products into int16, which
    saturates (the same cause as in :func:`crossrank.backends.onnx.quantize_int8`): on an AVX2-only
    AMD EPYC a tiny test model's int8 scores moved by 38% of their spread and kept only 76% of the
    float32 model's pairwise order with NNCF's default (the first layer only); on VNNI CPUs the
    default stands, so their int8 scores are those measured before.
    """
    import nncf

    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    vnni = any(capabilities.get(name) for name in ("avx512_vnni", "avx_vnni", "amx_int8"))
    if vnni or capabilities.get("architecture", "x86_64") != "x86_64":
        return None  # NNCF's default
    return nncf.OverflowFix.ENABLE


@contextlib.contextmanager
def _nncf_output(show: bool):
    """NNCF prints rich progress bars on stdout and INFO lines on its logger: send the bars to
    stderr (``show``) or drop them, and keep its logger to warnings while it runs."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr if show else io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


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
        import openvino as ov  # checked with its install hint by Backend.require

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
    """An OpenVINO model behind the backend interface (CPU, float32 or bfloat16; int8 weights and
    activations where the model was quantized)."""

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


def build_openvino_backends(settings, family, checkpoint) -> List[OpenVinoBackend]:
    """The OpenVINO backend for ``checkpoint``: the cached ONNX export compiled for the CPU, or
    its int8 quantization (made once, cached beside it) with ``quantize="int8"``."""
    from .onnx import exported_model

    path, model, encoder = exported_model(settings, family, checkpoint, quantize=None)
    if settings.quantize == "int8":
        path = openvino_int8_file(path, encoder, family.pad_token_id, settings.show_progress_bar)
    return [OpenVinoBackend(OpenVinoModel(path, settings.dtype), model, settings.dtype)]


__all__ = [
    "OpenVinoBackend",
    "build_openvino_backends",
    "OpenVinoModel",
    "openvino_int8_file",
    "quantize_int8",
]
