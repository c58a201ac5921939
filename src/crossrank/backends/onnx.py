"""ONNX Runtime backend: export a cross-encoder once, optionally int8-quantize it, score with it.

The export is the model's own forward traced by ``torch.onnx`` with the inputs crossrank feeds the
torch model (``input_ids``, ``attention_mask`` and, where the tokenizer makes them,
``token_type_ids``), padded batches of any size and length. fp32 scores equal the torch ones (to
float rounding); ``quantize="int8"`` stores weights as int8 with per-batch activation scales
(onnxruntime's dynamic quantization), which is about three times faster on an AVX2 CPU and moves
scores slightly.

Exports are cached in ``<model dir>/crossrank-onnx/``, or, for a hub id or a directory crossrank
cannot write to, in ``$CROSSRANK_CACHE`` (default ``~/.cache/crossrank``) under ``onnx/``. A
fingerprint of the weights and config is stored beside them, so changed weights are exported again,
with each file's size and hash, so a truncated or damaged file is made again (with a warning); a
lock file lets processes that export the same model at once take turns.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..batching import collate
from ..errors import CrossrankWarning, ModelLoadError
from . import export_cache

QUANTIZATIONS = (None, "int8")
EXPORT_DIR_NAME = "crossrank-onnx"
# Bump when the export or quantization recipe changes, so older cached files are redone.
# 2: int8 weights in 7 bits (reduce_range), see quantize_int8.
# 3: attention traced as plain ops (eager), a leaner graph than sdpa's, see export_onnx.
FORMAT_VERSION = 3
_OPSET = 17
# onnxruntime materializes every attention matrix (rows x heads x length^2 floats), so a batch
# of 32 x 512 tokens holds gigabytes. Runs of about this many tokens keep a 12-layer, 768-wide
# model's activations near 300 MB; on 2 AVX2 cores they ran as fast per pair as runs of 8-16 rows
# (and faster than whole 32 x 512 batches), where runs of 1-2 rows were slower.
CHUNK_TOKENS = 2048


class OnnxBackend:
    """An onnxruntime session behind the runtime interface (CPU, float32 or int8 weights)."""

    name = "onnx"
    dtype = torch.float32

    def __init__(self, session: OnnxModel, model) -> None:
        self.session = session
        self.model = model  # on the meta device: the config stays readable
        self.path: Optional[Path] = getattr(session, "path", None)

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return self.session.logits(batch)


def build_onnx_backends(settings, family, checkpoint) -> List[OnnxBackend]:
    """The ONNX Runtime backend for ``checkpoint``: exported (and int8-quantized) once, cached."""
    path, model, _ = exported_model(settings, family, checkpoint, settings.quantize)
    return [OnnxBackend(OnnxModel(path), model)]


def exported_model(settings, family, checkpoint, quantize: Optional[str]):
    """``(path, model, encoder)``: the ONNX file of ``checkpoint`` (exported once, cached), its
    torch model moved to the meta device (the runtime holds its own copy of the weights; the
    config stays readable), and the pair encoder the export traced."""
    from ..loading import load_weights

    model = load_weights(checkpoint, family.auto_class(), settings.show_progress_bar)
    encoder = family.encoder(settings.max_length, settings.query_max_length)
    path = onnx_file(model, encoder, settings.model, quantize, family.pad_token_id)
    model.to("meta")
    return path, model, encoder


class OnnxModel:
    """An onnxruntime session that takes crossrank's padded batches and returns logits.

    ``logits(batch)`` takes the dict of int64 tensors that :func:`crossrank.batching.collate`
    makes. ``InferenceSession.run`` is thread-safe, so one instance serves many threads.

    >>> onnx_model = OnnxModel(onnx_file(torch_model, encoder, "path/to/model", "int8"))  # doctest: +SKIP
    >>> onnx_model.logits(collate(encoder.encode(["q"], ["p"]), 0))                      # doctest: +SKIP
    tensor([[0.73]])
    """

    def __init__(self, path: Path, num_threads: Optional[int] = None) -> None:
        import onnxruntime as ort  # checked with its install hint by Backend.require

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except (
            Exception
        ) as error:  # onnxruntime's errors (InvalidProtobuf, Fail) are bare Exceptions
            raise ModelLoadError(
                f"onnxruntime cannot load {self.path} ({type(error).__name__}: {error}); "
                f"delete {self.path.parent} to export the model again"
            ) from error
        self.input_names = [node.name for node in self.session.get_inputs()]

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a padded batch, run in slices of about ``CHUNK_TOKENS`` tokens."""
        arrays = {name: batch[name].cpu().numpy() for name in self.input_names}
        rows, width = arrays[self.input_names[0]].shape
        step = max(1, CHUNK_TOKENS // max(width, 1))
        outputs = [
            self.session.run(None, {k: v[i : i + step] for k, v in arrays.items()})[0]
            for i in range(0, rows, step)
        ]
        return torch.from_numpy(np.concatenate(outputs)).float()


def onnx_file(
    model, encoder, model_name: str, quantize: Optional[str] = None, pad_id: int = 0
) -> Path:
    """The ONNX file for ``model``: the cached export when its fingerprint matches, else a new one.

    ``model`` is the loaded torch ``*ForSequenceClassification`` (float32, eval mode) and
    ``encoder`` the :class:`~crossrank.families.cross_encoder.PairEncoder` that makes its inputs; with
    ``quantize="int8"`` the int8 file made from that export. A cached file that no longer matches
    the size and hash recorded when it was written (truncated, damaged) is made again, with a
    one-line :class:`~crossrank.errors.CrossrankWarning`. Processes that export the same model at
    once take turns (a lock file in the export directory), so neither deletes the other's files.
    The export needs torch only (the OpenVINO backend reads it too); int8 needs onnxruntime.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    directory = export_dir(model_name)
    fingerprint = model_fingerprint(model)
    fp32 = directory / "model.onnx"
    directory.mkdir(parents=True, exist_ok=True)
    with export_cache.export_lock(directory):
        meta = export_cache.read_meta(directory)
        if meta.get("fingerprint") != fingerprint:
            # Under the lock, leftovers are from this model's older weights or a killed process.
            # model.onnx, model.int8.onnx, model.openvino-int8.xml/.bin and their temp files
            for stale in directory.glob("model.*"):
                stale.unlink(missing_ok=True)
            meta = {"fingerprint": fingerprint, "format": FORMAT_VERSION, "model": model_name}
        _ensure(directory, "model.onnx", meta, lambda: export_onnx(model, encoder, fp32, pad_id))
        path = fp32
        if quantize == "int8":
            path = directory / "model.int8.onnx"
            _ensure(directory, path.name, meta, lambda: quantize_int8(fp32, path))
    return path


def _ensure(directory: Path, name, meta: dict, make) -> None:
    """Make ``name`` (or a tuple of names ``make`` writes together) unless intact; warn when a
    recorded file was damaged."""
    names = (name,) if isinstance(name, str) else tuple(name)
    before = json.dumps(meta, sort_keys=True)
    if all(export_cache.intact(directory, each, meta) for each in names):
        if json.dumps(meta, sort_keys=True) != before:  # a copy: keep its new mtime, hash once
            export_cache.write_meta(directory, meta)
        return
    damaged = [each for each in names if export_cache.recorded(meta, each)]
    if damaged:
        warnings.warn(
            f"crossrank: the cached export file {directory / damaged[0]} is missing or damaged "
            "(its size or hash changed since it was written); making it again",
            CrossrankWarning,
            stacklevel=5,  # the caller of Reranker(...)
        )
    make()
    for each in names:
        export_cache.record(directory, each, meta)
    export_cache.write_meta(directory, meta)


def export_onnx(model, encoder, path: Path, pad_id: int = 0) -> None:
    """Trace ``model`` into an ONNX file at ``path`` with batch and sequence axes left dynamic.

    Attention is traced as its plain ops (transformers' "eager" attention, the same math as
    "sdpa"): the sdpa trace wraps every softmax in NaN guards (IsNaN, Where) and more shape ops;
    the eager one took 9-19% less time per onnxruntime run on a bge-base- and a MiniLM-sized BERT
    (fp32 and int8, 2 AVX2 cores). onnxruntime's offline transformer optimizer (``optimize_model``: fused
    Attention, SkipLayerNorm, BiasGelu) on top made runs 4-10% slower there, and its fused
    operators make dynamic quantization fail (no type for their outputs), so it is not used.
    """
    # Two pairs of different lengths, so the traced graph takes the padded-batch path.
    features = encoder.encode(
        ["what is a panda?", "what is a panda?"],
        ["hi", "The giant panda is a bear native to China; it eats bamboo."],
    )
    example = collate(features, pad_id)
    names = list(example)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    # The TorchScript-based exporter: it needs no onnxscript, and its graphs ran faster in
    # onnxruntime than the dynamo exporter's in our measurements. torch >= 2.9 defaults to dynamo.
    dynamo = (
        {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    )
    with warnings.catch_warnings(), torch.no_grad(), _eager_attention(model):
        # The tracer warns about Python branches on shapes; the ones in these models take the
        # same way for every padded batch (checked by the tests against torch scores).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),  # a trailing dict is passed as keyword arguments
            os.fspath(tmp),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
            opset_version=_OPSET,
            **dynamo,
        )
    os.replace(tmp, path)


@contextmanager
def _eager_attention(model):
    """Run ``model`` with transformers' eager attention inside the block (where it can switch)."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)  # transformers >= 4.56
    if switch is None or before in (None, "eager"):
        yield
        return
    switch("eager")
    try:
        yield
    finally:
        switch(before)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization: int8 weights, activations scaled per batch at run time.

    Weights get one scale per output channel: on all-MiniLM-L6-v2 that cut the error of the pooled
    [CLS] vector from 45% to 17% of its spread across SciFact pairs, at the same speed, where one
    scale per tensor (the default) did worse.

    Weights use 7 bits (``reduce_range``): on x86 CPUs without VNNI (AVX2 only, e.g. many AMD EPYC
    and pre-Cascade-Lake Xeons) onnxruntime's uint8 x int8 kernel adds pairs of products into int16,
    which saturates when per-channel scales push weights to +-127 (255 x 127 x 2 > 32767). With full
    8-bit weights a tiny test model moved by 28% of its score spread and swapped rankings on such a
    CPU (identically with onnxruntime 1.23.2, 1.31.1 and 1.32.0); 7-bit weights keep it within 8%
    and cost nothing on VNNI CPUs beyond one bit of precision (MiniLM scores: 0.004 from fp32).
    See https://github.com/microsoft/onnxruntime/issues/6004.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    with _quiet_root_logger():
        quantize_dynamic(
            os.fspath(source),
            os.fspath(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,  # no int16 saturation on AVX2-only CPUs (see the docstring)
            use_external_data_format=source.stat().st_size > 1_900_000_000,
        )
    os.replace(tmp, target)


@contextmanager
def _quiet_root_logger():
    """Drop what onnxruntime logs on the root logger while quantizing.

    It advises "pre-processing" (symbolic shape inference, which fails on these graphs) through
    ``logging.warning``; that call would also install a stderr handler on an unconfigured root
    logger. A temporary handler and filter keep both away from the caller's logging set-up.
    """
    root = logging.getLogger()
    handler = logging.NullHandler()
    drop = logging.Filter("crossrank-drop-all")  # passes only records of a logger by that name
    root.addHandler(handler)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(handler)


def export_dir(model_name: str) -> Path:
    """Where the export of ``model_name`` lives: beside a writable local checkpoint, else a cache."""
    local = Path(os.path.expanduser(model_name))
    if local.is_dir():
        beside = local / EXPORT_DIR_NAME
        if is_writable(beside):
            return beside
        name = os.fspath(local.resolve())
    else:
        name = model_name
    root = os.environ.get("CROSSRANK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "crossrank"
    )
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/\\"))[-80:]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return Path(os.path.expanduser(root)) / "onnx" / f"{slug}-{digest}"


def model_fingerprint(model) -> str:
    """A hash of the config and every weight's bytes (about 0.25 s for a 110M-parameter model)."""
    digest = hashlib.sha1(f"crossrank-onnx-{FORMAT_VERSION}".encode(), usedforsecurity=False)
    config = {
        k: v
        for k, v in model.config.to_dict().items()
        if not k.startswith("_") and k not in ("transformers_version", "torch_dtype", "dtype")
    }
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            # A byte view: no copy of the weights (a contiguous tensor stays as it is).
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def is_writable(directory: Path) -> bool:
    """True when files can be created in ``directory`` (made if missing)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


__all__: List[str] = [
    "OnnxBackend",
    "OnnxModel",
    "build_onnx_backends",
    "export_dir",
    "export_onnx",
    "exported_model",
    "onnx_file",
    "quantize_int8",
]
