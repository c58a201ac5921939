"""A reranker's settings: one frozen, validated object; its fields are the score-cache key.

Every constructor option is checked here, once, whichever way it arrives (``Reranker(...)``, the
CLI, the integrations' ``reranker_kwargs``, the server). Because the object is frozen, a setting
cannot change behind the scorer's back: a ``Reranker`` with other settings is a new ``Reranker``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch

from .devices import DeviceLike, DTypeLike, choose_dtype, parse_dtype, resolve_device
from .errors import ArgumentError
from .inputs import check_count, check_lengths
from .loading import DEFAULT_MAX_LENGTH, trained_max_length
from .windows import LONG_DOCUMENT_MODES

BACKENDS = ("torch", "onnx", "openvino")
# What each CPU-only backend computes in (int8 is asked with quantize=, not dtype=)
_CPU_BACKEND_DTYPES = {"onnx": (torch.float32,), "openvino": (torch.float32, torch.bfloat16)}
QUANTIZATIONS = (None, "int8")
PROMPT_FORMATS = ("qwen3", "bge")


@dataclass(frozen=True)
class Settings:
    """What a :class:`~crossrank.Reranker` was built with, checked; see its docstring for each.

    ``query_max_length=None`` means the model family's default (3/4 of what the query and passage
    share); ``prompt_format=None`` on a decoder checkpoint is replaced by the detected format once
    the checkpoint is opened, and ``max_length`` by the model's limit where it is lower.
    ``create(max_length=None)`` resolves to the length a ``crossrank train`` checkpoint was
    trained at (its ``crossrank-run.json``), else 512.

    >>> Settings.create("path/to/model", device="cpu").max_length
    512
    """

    model: str
    device: torch.device
    dtype: torch.dtype
    max_length: int = DEFAULT_MAX_LENGTH
    query_max_length: Optional[int] = None
    batch_size: int = 32
    show_progress_bar: bool = False
    trust_remote_code: bool = False
    instruction: Optional[str] = None
    prompt_format: Optional[str] = None
    long_documents: str = "truncate"
    stride: int = 128
    backend: str = "torch"
    quantize: Optional[str] = None
    cache_size: int = 0
    calibration: Optional[str] = None
    compile: bool = False
    # Every device a replica runs on (``device`` is the first); one entry for a single device.
    devices: Tuple[torch.device, ...] = ()

    def __post_init__(self) -> None:
        if not self.devices:
            object.__setattr__(self, "devices", (self.device,))
        if self.devices[0] != self.device:
            raise ArgumentError(f"devices must start with device={self.device}, got {self.devices}")
        if len(self.devices) > 1 and self.backend != "torch":
            raise ArgumentError(
                f"several devices run replicas of a torch model; backend={self.backend!r} takes one "
                "device (onnxruntime already spreads one call over the CPU's cores)"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise TypeError(f"model must be a hub id or a local directory path, got {self.model!r}")
        check_count(self.batch_size, "batch_size", 1)
        check_lengths(self.max_length, self.query_max_length)
        if self.max_length is None:
            raise ArgumentError("max_length must be an int >= 16, got None")
        for name in ("show_progress_bar", "trust_remote_code"):
            if not isinstance(getattr(self, name), bool):
                raise ArgumentError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.long_documents not in LONG_DOCUMENT_MODES:
            raise ValueError(
                f"long_documents must be 'truncate' or 'maxp', got {self.long_documents!r}"
            )
        check_count(self.stride, "stride", 0, " (tokens shared by consecutive windows)")
        if self.instruction is not None and (
            not isinstance(self.instruction, str) or not self.instruction.strip()
        ):
            raise ValueError(
                f"instruction must be a non-empty str or None, got {self.instruction!r}"
            )
        if self.prompt_format not in (None, *PROMPT_FORMATS):
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS} or None, got {self.prompt_format!r}"
            )
        self._check_backend()
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        if self.compile and self.backend != "torch":
            raise ValueError(
                f"compile=True compiles the torch model; backend={self.backend!r} runs its own "
                "compiled graph already: drop compile=True or use backend='torch'"
            )
        check_count(self.cache_size, "cache_size", 0, " (0 turns the cache off)")
        if self.calibration is not None and not isinstance(self.calibration, str):
            raise TypeError(
                "calibration must be None, 'auto' or the path of a crossrank_calibration.json, "
                f"got {type(self.calibration).__name__}"
            )

    def _check_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be 'torch', 'onnx' or 'openvino', got {self.backend!r}")
        if self.quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be None or 'int8', got {self.quantize!r}")
        if self.quantize is not None and self.backend == "torch":
            raise ValueError(
                f"quantize={self.quantize!r} needs backend='openvino' (pip install "
                "crossrank[openvino]) or backend='onnx' (pip install crossrank[onnx]); "
                "the torch backend runs the model as loaded"
            )
        if self.backend in _CPU_BACKEND_DTYPES:
            if self.device.type != "cpu":
                raise ValueError(
                    f"backend={self.backend!r} runs on CPU, got device={str(self.device)!r}; "
                    "use device='cpu' or backend='torch'"
                )
            if self.dtype not in _CPU_BACKEND_DTYPES[self.backend]:
                raise ValueError(_cpu_dtype_message(self.backend, dtype_name(self.dtype)))

    @classmethod
    def create(
        cls,
        model: Union[str, os.PathLike],
        *,
        device: Union[DeviceLike, Sequence[DeviceLike]] = "auto",
        use_fp16: Optional[bool] = None,
        dtype: DTypeLike = None,
        backend: str = "torch",
        max_length: Optional[int] = None,
        **options,
    ) -> Settings:
        """Check the options and resolve ``device``/``use_fp16``/``dtype`` into what runs here.

        ``max_length=None``: the checkpoint's training length (:func:`trained_max_length`), else 512.
        """
        model = os.fspath(model) if isinstance(model, os.PathLike) else model
        if max_length is None:
            max_length = trained_max_length(model) or DEFAULT_MAX_LENGTH
        options["max_length"] = max_length
        if isinstance(device, (list, tuple)):
            if not device:
                raise ArgumentError(
                    "device=[] names no device; pass 'auto', 'cpu' or a list of them"
                )
            resolved = tuple(resolve_device(d) for d in device)
            names = [str(d) for d in resolved]
            if len({d.type for d in resolved}) > 1:
                raise ArgumentError(
                    f"device lists devices of different kinds: {names}; use one kind"
                )
            if resolved[0].type != "cpu" and len(set(names)) < len(names):
                raise ArgumentError(f"device lists an accelerator twice: {names}")
            if backend != "torch":
                raise ArgumentError(
                    f"a list of devices runs torch replicas; backend={backend!r} takes one device"
                )
            one = cls.create(model, device=resolved[0], use_fp16=use_fp16, dtype=dtype, **options)
            return one.replace(devices=resolved)
        if use_fp16 is not None and not isinstance(use_fp16, bool):
            raise TypeError(f"use_fp16 must be True, False or None, got {use_fp16!r}")
        if backend in _CPU_BACKEND_DTYPES:
            # ONNX Runtime and OpenVINO run on CPU: "auto" means CPU, anything else is refused.
            chosen = torch.float32 if dtype is None else parse_dtype(dtype)
            if chosen not in _CPU_BACKEND_DTYPES[backend]:
                raise ValueError(_cpu_dtype_message(backend, repr(dtype)))
            if device is None or device == "auto":
                device = "cpu"
            resolved = resolve_device(device)
            return cls(model, resolved, chosen, backend=backend, **options)
        resolved = resolve_device(device)
        return cls(
            model, resolved, choose_dtype(resolved, use_fp16, dtype), backend=backend, **options
        )

    def replace(self, **changes) -> Settings:
        """A copy with ``changes``, checked like the original."""
        return dataclasses.replace(self, **changes)

    def score_key(
        self, max_length: Optional[int] = None, query_max_length: Optional[int] = None
    ) -> tuple:
        """Everything that changes a raw score (the cache key besides the texts).

        ``max_length``/``query_max_length``: a call's overrides of the settings' own.
        """
        if max_length is None and query_max_length is None:
            max_length, query_max_length = self.max_length, self.query_max_length
        return (
            self.model,
            self.backend,
            self.quantize,
            dtype_name(self.dtype),
            max_length,
            query_max_length,
            self.instruction,
            self.prompt_format,
            self.long_documents,
            self.stride,
        )


def _cpu_dtype_message(backend: str, got: str) -> str:
    if backend == "onnx":
        return f"backend='onnx' runs float32 (or int8 with quantize='int8'), got dtype={got}"
    return f"backend='openvino' runs float32 or bfloat16, got dtype={got}"


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``."""
    return str(dtype).replace("torch.", "")
