"""The backends crossrank scores on, as objects: what each supports, what it needs, how it builds.

Each backend class declares the model families, device types, dtypes and quantizations it runs,
the optional dependency it needs (with the ``pip install`` hint its error gives), and builds the
runtime objects the pipeline calls (``logits(batch)``). Settings, the command line and error
messages ask this registry which backends exist and what each takes; no other code compares a
backend's name. This module imports no torch (``crossrank --help`` reads the names): a backend
imports its runtime module when it builds.

>>> backend_names()
('torch', 'onnx', 'openvino')
>>> get_backend("onnx").install_hint
'pip install crossrank[onnx]'
>>> get_backend("openvino").supports_family("decoder LLM reranker")
False
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ArgumentError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .base import Runtime

DTypeChange = Optional[Callable[["torch.dtype"], None]]


class Backend:
    """A runtime crossrank can score on; subclasses declare what it supports and build it.

    Attributes:
        name: what ``backend=`` takes.
        families: names of the model families it runs (``None``: every family).
        device_types: torch device types it runs on; the first is where ``device="auto"`` goes
            when the machine's own choice is not among them.
        dtypes: dtype names it computes in, the default first (``None``: whatever the device
            runs, chosen by :func:`crossrank.devices.choose_dtype`).
        quantizations: what ``quantize=`` may be (``None``: the weights as loaded).
        replicas: runs one replica per device when given several devices.
        compiles: takes ``compile=True`` (``torch.compile``).
        extra: the ``pip install crossrank[extra]`` that brings its dependencies.
        dependencies: ``(module, what the error names, quantization)``: a module imported before
            any weights load, for every quantization (``None``) or one.
        runs_cached_classifiers: runs sequence classifiers whose forward returns a key/value
            cache (GPT-2, Qwen, Llama ``*ForSequenceClassification``); a backend that exports
            the torch model to a graph cannot trace the cache object, so it refuses them.
    """

    name: str = ""
    families: Optional[Tuple[str, ...]] = None
    device_types: Tuple[str, ...] = ("cpu", "cuda", "mps")
    dtypes: Optional[Tuple[str, ...]] = None
    quantizations: Tuple[Optional[str], ...] = (None,)
    replicas: bool = False
    compiles: bool = False
    extra: Optional[str] = None
    dependencies: Tuple[Tuple[str, str, Optional[str]], ...] = ()
    runs_cached_classifiers: bool = True

    # ------------------------------------------------------------------ what it supports

    @property
    def install_hint(self) -> Optional[str]:
        """The command that installs this backend's dependencies, or None (nothing to install)."""
        return f"pip install crossrank[{self.extra}]" if self.extra else None

    def supports_family(self, family_name: str) -> bool:
        """True when this backend runs the model family called ``family_name``."""
        return self.families is None or family_name in self.families

    def supports_device_type(self, device_type: str) -> bool:
        """True when this backend runs on torch devices of type ``device_type`` (``"cuda"``, ...)."""
        return device_type in self.device_types

    # ------------------------------------------------------------------ checks

    def import_dependency(self, module: str) -> Any:
        """Import one of this backend's declared dependencies, or fail with the install hint."""
        declared = {name: (what, quantize) for name, what, quantize in self.dependencies}
        if module not in declared:
            raise KeyError(f"{module!r} is not a dependency of backend={self.name!r}")
        what, quantize = declared[module]
        try:
            return importlib.import_module(module)
        except ImportError as error:
            condition = f" with quantize={quantize!r}" if quantize else ""
            verb = "are" if " and " in what else "is"
            raise ImportError(
                f"backend={self.name!r}{condition} needs {what}, which {verb} not installed: "
                f"{self.install_hint}"
            ) from error

    def require(self, quantize: Optional[str] = None) -> None:
        """Import what this backend needs for ``quantize``: a missing extra fails before any
        weights load, with the command that installs it."""
        for module, _, needed_for in self.dependencies:
            if needed_for is None or needed_for == quantize:
                self.import_dependency(module)

    def check_settings(self, settings) -> None:
        """Refuse settings this backend cannot run (quantization, device, dtype, compile)."""
        from ..devices import dtype_name

        if settings.quantize not in quantizations():
            allowed = " or ".join(repr(q) if q else "None" for q in quantizations())
            raise ValueError(f"quantize must be {allowed}, got {settings.quantize!r}")
        if settings.quantize not in self.quantizations:
            offers = " or ".join(
                f"backend={b.name!r} ({b.install_hint})"
                if b.install_hint
                else f"backend={b.name!r}"
                for b in backends()
                if settings.quantize in b.quantizations
            )
            raise ValueError(
                f"quantize={settings.quantize!r} needs {offers}; the {self.name} backend runs the "
                "model as loaded"
            )
        self.check_devices(settings.devices)
        device = settings.device
        if not self.supports_device_type(device.type):
            others = [b.name for b in backends() if b.supports_device_type(device.type)]
            instead = f" or backend={others[0]!r}" if others else ""
            raise ValueError(
                f"backend={self.name!r} runs on {self._device_words()}, got device="
                f"{str(device)!r}; use device={self.device_types[0]!r}{instead}"
            )
        if self.dtypes is not None and dtype_name(settings.dtype) not in self.dtypes:
            raise ValueError(self._dtype_refusal(dtype_name(settings.dtype)))
        if settings.compile and not self.compiles:
            compiling = [b.name for b in backends() if b.compiles]
            raise ValueError(
                f"compile=True compiles the {' or '.join(compiling)} model; backend={self.name!r} "
                f"runs its own compiled graph already: drop compile=True or use "
                f"backend={compiling[0]!r}"
            )

    def check_devices(self, devices: Sequence[Any]) -> None:
        """Refuse several devices unless this backend runs a replica on each."""
        if len(devices) > 1 and not self.replicas:
            replicating = " or ".join(b.name for b in backends() if b.replicas)
            raise ArgumentError(
                f"several devices run replicas of a {replicating} model; backend={self.name!r} "
                "takes one device (its runtime already spreads one call over the CPU's cores)"
            )

    def check_family(self, family) -> None:
        """Refuse a model family this backend cannot run, from the checkpoint's config alone
        (before any weights load)."""
        if not self.supports_family(family.name):
            running = [b.name for b in backends() if b.supports_family(family.name)]
            raise ValueError(
                f"backend={self.name!r} does not run {family.name}s; model={family.model_name!r} "
                f"is a {family.name} (runs on backend {' or '.join(map(repr, running))}): use "
                f"backend={running[0]!r}"
            )
        classifier = None if self.runs_cached_classifiers else cached_classifier(family)
        if classifier:
            running = [
                b.name
                for b in backends()
                if b.runs_cached_classifiers and b.supports_family(family.name)
            ]
            raise ValueError(
                f"backend={self.name!r} cannot export model={family.model_name!r}: its "
                f"{classifier} is a decoder-type classifier whose forward returns a key/value "
                f"cache, which the {self.name} export cannot trace. It runs on backend "
                f"{' or '.join(map(repr, running))}: use backend={running[0]!r}"
            )

    def _device_words(self) -> str:
        return " or ".join(t.upper() for t in self.device_types)

    def _dtype_refusal(self, got: str) -> str:
        quantized = [q for q in self.quantizations if q]
        also = f" (or {quantized[0]} with quantize={quantized[0]!r})" if quantized else ""
        return f"backend={self.name!r} runs {' or '.join(self.dtypes or ())}{also}, got dtype={got}"

    # ------------------------------------------------------------------ building

    def resolve(self, device, use_fp16: Optional[bool], dtype) -> Tuple[torch.device, torch.dtype]:
        """The torch device and dtype that ``device``/``use_fp16``/``dtype`` mean on this backend."""
        from ..devices import choose_dtype, dtype_name, parse_dtype, resolve_device

        if self.dtypes is None:
            resolved = resolve_device(device)
            return resolved, choose_dtype(resolved, use_fp16, dtype)
        import torch

        # A runtime with its own precisions: use_fp16 does not apply, "auto" means a device it runs.
        chosen = getattr(torch, self.dtypes[0]) if dtype is None else parse_dtype(dtype)
        if dtype_name(chosen) not in self.dtypes:
            raise ValueError(self._dtype_refusal(repr(dtype)))
        resolved = resolve_device(device)
        if (device is None or device == "auto") and not self.supports_device_type(resolved.type):
            resolved = resolve_device(self.device_types[0])
        return resolved, chosen

    def build(
        self, settings, family, checkpoint, on_dtype_change: DTypeChange = None
    ) -> List[Runtime]:
        """Load ``checkpoint``'s weights and return one runtime per device in ``settings.devices``.

        Called after :meth:`require` and :meth:`check_family`; ``on_dtype_change`` is told the new
        dtype when a runtime falls back to float32.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<crossrank backend {self.name!r}>"


class TorchBackendType(Backend):
    """PyTorch: every family, CPU/CUDA/MPS, any dtype the device runs, replicas, ``torch.compile``."""

    name = "torch"
    replicas = True
    compiles = True

    def build(
        self, settings, family, checkpoint, on_dtype_change: DTypeChange = None
    ) -> List[Runtime]:
        from .torch import build_torch_backends

        return build_torch_backends(settings, family, checkpoint, on_dtype_change)


class OnnxBackendType(Backend):
    """ONNX Runtime on CPU: cross-encoders, float32, or dynamic int8 (``quantize="int8"``)."""

    name = "onnx"
    families = ("cross-encoder",)
    device_types = ("cpu",)
    dtypes = ("float32",)
    quantizations = (None, "int8")
    extra = "onnx"
    dependencies = (("onnxruntime", "onnxruntime and onnx", None),)
    runs_cached_classifiers = False

    def build(
        self, settings, family, checkpoint, on_dtype_change: DTypeChange = None
    ) -> List[Runtime]:
        from .onnx import build_onnx_backends

        return build_onnx_backends(settings, family, checkpoint)


class OpenVinoBackendType(Backend):
    """OpenVINO on CPU: cross-encoders, float32 or bfloat16, or static int8 through NNCF."""

    name = "openvino"
    families = ("cross-encoder",)
    device_types = ("cpu",)
    dtypes = ("float32", "bfloat16")
    quantizations = (None, "int8")
    extra = "openvino"
    dependencies = (("openvino", "openvino", None), ("nncf", "nncf", "int8"))
    runs_cached_classifiers = False  # it reads the ONNX export

    def build(
        self, settings, family, checkpoint, on_dtype_change: DTypeChange = None
    ) -> List[Runtime]:
        from .openvino import build_openvino_backends

        return build_openvino_backends(settings, family, checkpoint)


_REGISTRY: Dict[str, Backend] = {
    backend.name: backend
    for backend in (TorchBackendType(), OnnxBackendType(), OpenVinoBackendType())
}


def backend_names() -> Tuple[str, ...]:
    """The names ``backend=`` takes, the default first."""
    return tuple(_REGISTRY)


def backends() -> Tuple[Backend, ...]:
    """Every backend, in :func:`backend_names` order."""
    return tuple(_REGISTRY.values())


def get_backend(name: Any) -> Backend:
    """The backend called ``name``; a ``ValueError`` listing the names for anything else.

    >>> get_backend("tensorrt")
    Traceback (most recent call last):
    ...
    ValueError: backend must be 'torch', 'onnx' or 'openvino', got 'tensorrt'
    """
    backend = _REGISTRY.get(name) if isinstance(name, str) else None
    if backend is None:
        names = [repr(n) for n in _REGISTRY]
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise ValueError(f"backend must be {listed}, got {name!r}")
    return backend


def build_backends(
    settings, family, checkpoint, on_dtype_change: DTypeChange = None
) -> List[Runtime]:
    """The runtimes ``settings.backend`` builds for ``checkpoint``, its dependencies and the
    model family checked first (a missing extra or a family it cannot run fails before any
    weights load)."""
    backend = get_backend(settings.backend)
    backend.require(settings.quantize)
    backend.check_family(family)
    return backend.build(settings, family, checkpoint, on_dtype_change)


def cached_classifier(family) -> Optional[str]:
    """The class name of ``family``'s sequence classifier when its forward returns a key/value
    cache (takes ``use_cache``: GPT-2, Qwen, Llama, ...), else None; read from the class that
    transformers maps the config to, without loading weights."""
    import inspect

    from transformers import AutoModelForSequenceClassification

    auto = family.auto_class()
    if auto is not AutoModelForSequenceClassification:
        return None
    try:
        model_class = auto._model_mapping[type(family.config)]
    except (KeyError, ValueError):  # remote code or an unknown config: the export speaks for itself
        return None
    if "use_cache" in inspect.signature(model_class.forward).parameters:
        return model_class.__name__
    return None


def quantizations() -> Tuple[Optional[str], ...]:
    """Every value ``quantize=`` takes on some backend (``None`` first)."""
    seen: Dict[Optional[str], None] = {None: None}
    for backend in backends():
        seen.update(dict.fromkeys(backend.quantizations))
    return tuple(seen)


__all__ = [
    "Backend",
    "backend_names",
    "backends",
    "build_backends",
    "get_backend",
    "quantizations",
]
