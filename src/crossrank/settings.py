"""A reranker's settings: one frozen, validated object, and the one table of model options.

Every constructor option is checked here, once, whichever way it arrives (``Reranker(...)``, the
CLI, the integrations' ``reranker_kwargs``, the server). Because the object is frozen, a setting
cannot change behind the scorer's back: a ``Reranker`` with other settings is a new ``Reranker``.

Each field carries its metadata (:func:`model_options`): its default as callers pass it, whether
it changes a score, its command-line flag and help. The score-cache key
(:meth:`Settings.score_key`), the CLI's model options (:mod:`crossrank.cli.options`) and
``Reranker``'s defaults all come from that table. This module imports no torch, so the
command line can read the table for ``--help``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

from .backends.registry import backend_names, get_backend, quantizations
from .errors import ArgumentError
from .inputs import check_count, check_lengths
from .loading import DEFAULT_MAX_LENGTH, DEFAULT_MODEL, trained_max_length
from .windows import LONG_DOCUMENT_MODES

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .devices import DeviceLike, DTypeLike

PROMPT_FORMATS = ("qwen3", "bge", "mxbai")
_OPTION = "crossrank_option"  # the key of a field's metadata that holds its option spec
_UNSET: Any = object()


@dataclass(frozen=True)
class ModelOption:
    """One model-loading option: how callers pass it, whether it changes scores, its CLI flag.

    ``default`` is what ``Reranker(...)`` and the CLI use when the option is left out (``None``
    for ``max_length`` means "the checkpoint's training length, else 512"). ``stored=False``
    marks an option resolved into other fields (``use_fp16`` into ``dtype``).

    >>> [o.flag for o in model_options() if o.name == "batch_size"]
    ['--batch-size']
    """

    name: str
    default: Any
    affects_scores: bool
    help: str
    flag: Optional[str] = None
    value_type: Optional[type] = None  # what the flag's argument parses as (None: a str)
    choices: Optional[Tuple[Any, ...]] = None
    stored: bool = True


def _option(
    help: str,
    *,
    affects_scores: bool,
    flag: Optional[str] = None,
    default: Any = _UNSET,
    given: Any = _UNSET,
    value_type: Optional[type] = None,
    choices: Optional[Tuple[Any, ...]] = None,
) -> Any:
    """A dataclass field with its option metadata; ``given`` is the default callers see when it
    differs from the stored field's own (``device="auto"`` resolves to a ``torch.device``)."""
    spec = {
        "default": default if given is _UNSET else given,
        "affects_scores": affects_scores,
        "help": help,
        "flag": flag,
        "value_type": value_type,
        "choices": choices,
    }
    if default is _UNSET:
        return field(metadata={_OPTION: spec})
    return field(default=default, metadata={_OPTION: spec})


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

    model: str = _option(
        f"hub id or local checkpoint directory (default: {DEFAULT_MODEL})",
        affects_scores=True,
        flag="--model",
        given=DEFAULT_MODEL,
    )
    device: torch.device = _option(
        "auto | cpu | cuda[:N] | mps", affects_scores=False, flag="--device", given="auto"
    )
    dtype: torch.dtype = _option(
        "force float32 | float16 | bfloat16", affects_scores=True, flag="--dtype", given=None
    )
    max_length: int = _option(
        "tokens per (query, passage) pair (default: the length the checkpoint was trained at by "
        "crossrank train, else 512)",
        affects_scores=True,
        flag="--max-length",
        default=DEFAULT_MAX_LENGTH,
        given=None,
        value_type=int,
    )
    query_max_length: Optional[int] = _option(
        "tokens kept of the query (default: 3/4 of --max-length)",
        affects_scores=True,
        flag="--query-max-length",
        default=None,
        value_type=int,
    )
    batch_size: int = _option(
        "pairs per forward pass (for the longest pairs; shorter ones share the token budget)",
        affects_scores=False,
        flag="--batch-size",
        default=32,
        value_type=int,
    )
    show_progress_bar: bool = _option(
        "show a progress bar while scoring", affects_scores=False, default=False
    )
    trust_remote_code: bool = _option(
        "run the checkpoint's own code (custom architectures)",
        affects_scores=False,
        flag="--trust-remote-code",
        default=False,
    )
    instruction: Optional[str] = _option(
        "decoder LLM rerankers: the task instruction",
        affects_scores=True,
        flag="--instruction",
        default=None,
    )
    long_documents: str = _option(
        "truncate long passages (default) or score overlapping windows and keep the best",
        affects_scores=True,
        flag="--long-documents",
        default="truncate",
        choices=LONG_DOCUMENT_MODES,
    )
    stride: int = _option(
        "maxp: tokens windows share",
        affects_scores=True,
        flag="--stride",
        default=128,
        value_type=int,
    )
    prompt_format: Optional[str] = _option(
        "decoder LLM rerankers: the prompt where the model type does not tell",
        affects_scores=True,
        flag="--prompt-format",
        default=None,
        choices=PROMPT_FORMATS,
    )
    backend: str = _option(
        "the runtime: torch, or onnx / openvino on CPU (exported once and cached)",
        affects_scores=True,
        flag="--backend",
        default=backend_names()[0],
        choices=backend_names(),
    )
    quantize: Optional[str] = _option(
        "int8 weights (with --backend openvino or onnx)",
        affects_scores=True,
        flag="--quantize",
        default=None,
        choices=tuple(q for q in quantizations() if q),
    )
    cache_size: int = _option(
        "scores to remember (LRU; 0 = off)",
        affects_scores=False,
        flag="--cache-size",
        default=0,
        value_type=int,
    )
    # Calibration maps normalized scores; the raw scores (what the cache holds) stay the same.
    calibration: Optional[str] = _option(
        "'auto' (the model directory's calibration, from crossrank calibrate) or a JSON file: "
        "scores become calibrated probabilities",
        affects_scores=False,
        flag="--calibration",
        default=None,
    )
    compile: bool = _option(
        "torch backend: torch.compile the model (the first calls compile; faster after)",
        affects_scores=False,
        flag="--compile",
        default=False,
    )
    # Every device a replica runs on (``device`` is the first); one entry for a single device.
    devices: Tuple[torch.device, ...] = ()

    def __post_init__(self) -> None:
        if not self.devices:
            object.__setattr__(self, "devices", (self.device,))
        if self.devices[0] != self.device:
            raise ArgumentError(f"devices must start with device={self.device}, got {self.devices}")
        backend = get_backend(self.backend)
        backend.check_devices(self.devices)
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
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        backend.check_settings(self)  # quantize, device type, dtype, compile on this backend
        check_count(self.cache_size, "cache_size", 0, " (0 turns the cache off)")
        if self.calibration is not None and not isinstance(self.calibration, str):
            raise TypeError(
                "calibration must be None, 'auto' or the path of a crossrank_calibration.json, "
                f"got {type(self.calibration).__name__}"
            )

    @classmethod
    def create(
        cls, model: Union[str, os.PathLike], *, device: Union[DeviceLike, Any] = "auto", **options
    ) -> Settings:
        """Check the options and resolve ``device``/``use_fp16``/``dtype`` into what runs here.

        ``options`` are :func:`model_options` by name; left out, they take the table's defaults.
        ``max_length=None``: the checkpoint's training length (:func:`trained_max_length`), else 512.
        """
        model = os.fspath(model) if isinstance(model, os.PathLike) else model
        use_fp16 = options.pop("use_fp16", DEFAULTS["use_fp16"])
        dtype: DTypeLike = options.pop("dtype", DEFAULTS["dtype"])
        backend = get_backend(options.setdefault("backend", DEFAULTS["backend"]))
        if options.get("max_length") is None:
            options["max_length"] = trained_max_length(model) or DEFAULT_MAX_LENGTH
        if use_fp16 is not None and not isinstance(use_fp16, bool):
            raise TypeError(f"use_fp16 must be True, False or None, got {use_fp16!r}")
        if isinstance(device, (list, tuple)):
            resolved = _device_list(device)
            backend.check_devices(resolved)
            first = cls.create(model, device=resolved[0], use_fp16=use_fp16, dtype=dtype, **options)
            return first.replace(devices=resolved)
        one, chosen = backend.resolve(device, use_fp16, dtype)
        return cls(model, one, chosen, **options)

    def replace(self, **changes) -> Settings:
        """A copy with ``changes``, checked like the original."""
        return dataclasses.replace(self, **changes)

    def score_key(
        self, max_length: Optional[int] = None, query_max_length: Optional[int] = None
    ) -> tuple:
        """Everything that changes a raw score (the cache key besides the texts): the values of
        the fields :func:`model_options` marks ``affects_scores``, in field order.

        ``max_length``/``query_max_length``: a call's overrides of the settings' own.
        """
        from .devices import dtype_name  # torch is loaded: these settings hold a torch dtype

        values = {name: getattr(self, name) for name in SCORE_FIELDS}
        values["dtype"] = dtype_name(self.dtype)
        if max_length is not None or query_max_length is not None:
            values["max_length"], values["query_max_length"] = max_length, query_max_length
        return tuple(values.values())


def _device_list(devices) -> tuple:
    """The torch devices of a ``device=[...]`` list: one kind, no accelerator twice."""
    from .devices import resolve_device

    if not devices:
        raise ArgumentError("device=[] names no device; pass 'auto', 'cpu' or a list of them")
    resolved = tuple(resolve_device(d) for d in devices)
    names = [str(d) for d in resolved]
    if len({d.type for d in resolved}) > 1:
        raise ArgumentError(f"device lists devices of different kinds: {names}; use one kind")
    if resolved[0].type != "cpu" and len(set(names)) < len(names):
        raise ArgumentError(f"device lists an accelerator twice: {names}")
    return resolved


_USE_FP16 = ModelOption(
    "use_fp16",
    None,
    affects_scores=True,  # through the dtype it resolves to, which the score key holds
    help="half precision where the device does it well (None: yes on CUDA/MPS, no on CPU)",
    stored=False,
)


def model_options() -> Tuple[ModelOption, ...]:
    """Every option a model loads with, in ``Reranker``'s keyword order: the one option table.

    The CLI's model flags, ``Reranker``'s defaults and the score-cache key derive from it.

    >>> {o.name: o.default for o in model_options()}["long_documents"]
    'truncate'
    """
    return _MODEL_OPTIONS


def _table() -> Tuple[ModelOption, ...]:
    options = []
    for each in dataclasses.fields(Settings):
        spec = each.metadata.get(_OPTION)
        if spec is not None:
            options.append(ModelOption(each.name, **spec))
        if each.name == "device":
            options.append(_USE_FP16)  # resolved with device into dtype
    return tuple(options)


_MODEL_OPTIONS = _table()
# Each option's default as callers pass it (``Reranker(...)``'s keyword defaults come from here)
DEFAULTS: Mapping[str, Any] = {option.name: option.default for option in _MODEL_OPTIONS}
# The stored fields that change a raw score, in field order: the score-cache key
SCORE_FIELDS: Tuple[str, ...] = tuple(
    option.name for option in _MODEL_OPTIONS if option.affects_scores and option.stored
)


def option_defaults() -> Dict[str, Any]:
    """A copy of :data:`DEFAULTS`: every model option's default by name."""
    return dict(DEFAULTS)


def __getattr__(name: str) -> Any:
    # Names this module exported before the backend registry held them.
    if name == "BACKENDS":
        return backend_names()
    if name == "QUANTIZATIONS":
        return quantizations()
    if name == "dtype_name":
        from .devices import dtype_name

        return dtype_name
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULTS",
    "PROMPT_FORMATS",
    "SCORE_FIELDS",
    "ModelOption",
    "Settings",
    "model_options",
    "option_defaults",
]
