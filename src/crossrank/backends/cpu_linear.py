"""Float32 linear layers through oneDNN on CPUs where torch's default BLAS is not the fastest.

A cross-encoder's forward is ~80% linear layers. torch runs a float32 ``nn.Linear`` on x86 through
Intel MKL, which on a non-Intel CPU (AMD EPYC / Ryzen) does not use its AVX-512 kernels; oneDNN
(bundled with torch, the library inductor's frozen graphs and OpenVINO use) does. Routing each
inference-time ``nn.Linear`` through ``torch.ops.mkldnn._linear_pointwise`` with the model's own
weights (no copy, no repacking: the same memory) gives ~1.1x the whole forward on a 2-core AMD
EPYC with AVX-512 (benchmarks/RESULTS.md), with scores within 1e-6 of MKL's. The layer GELU that
follows a BERT-like intermediate projection is fused into it (attr ``"gelu"``), and so is the
residual add before each LayerNorm (``"add"``): passes over the activations saved.

Only the forward under ``torch.inference_mode`` / ``no_grad`` on CPU float32 takes the oneDNN path;
anything else (training, another device or dtype) runs ``F.linear`` as before, and the modules stay
``nn.Linear`` subclasses with the same parameters and state dict.

``CROSSRANK_CPU_LINEAR=onednn`` forces it on, ``=mkl`` (or ``off``) off; the default ``auto`` turns it
on for float32 on a non-Intel x86-64 CPU with oneDNN.
"""

from __future__ import annotations

import os
import platform
from functools import cache, lru_cache

import torch
import torch.nn.functional as F

from ..errors import ArgumentError

ENV = "CROSSRANK_CPU_LINEAR"
CHOICES = ("auto", "onednn", "mkl", "off")


def _onednn_linear(x: torch.Tensor, weight, bias, attr: str = "none", algorithm: str = ""):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)


def _fast(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
    )


class OneDNNLinear(torch.nn.Linear):
    """``nn.Linear`` whose float32 CPU inference runs through oneDNN (same weights, same results)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Linear's name
        if _fast(input, self.weight):
            return _onednn_linear(input, self.weight, self.bias)
        return F.linear(input, self.weight, self.bias)


class _FusedGeluIntermediate(torch.nn.Module):
    """BERT-like ``intermediate``: ``gelu(dense(x))`` as one oneDNN call at inference."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dense = self.dense
        if _fast(hidden_states, dense.weight):
            return _onednn_linear(hidden_states, dense.weight, dense.bias, "gelu", "none")
        return self.intermediate_act_fn(dense(hidden_states))


class _FusedAddOutput(torch.nn.Module):
    """BERT-like ``output``: ``LayerNorm(dense(x) + residual)``, the add done inside the GEMM."""

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        dense = self.dense
        if _fast(hidden_states, dense.weight) and not self.training:
            fused = torch.ops.mkldnn._linear_pointwise.binary(
                hidden_states, input_tensor.contiguous(), dense.weight, dense.bias, "add"
            )
            return self.LayerNorm(fused)
        return super().forward(hidden_states, input_tensor)


# The forwards the fused classes replace, word for word (whitespace aside): a model whose module
# computes anything else keeps its own forward.
_INTERMEDIATE = (
    "hidden_states = self.dense(hidden_states) "
    "hidden_states = self.intermediate_act_fn(hidden_states) return hidden_states"
)
_OUTPUT = (
    "hidden_states = self.dense(hidden_states) hidden_states = self.dropout(hidden_states) "
    "hidden_states = self.LayerNorm(hidden_states + input_tensor) return hidden_states"
)


@cache
def _body(cls: type) -> str:
    import inspect

    try:
        lines = inspect.getsource(cls.forward).splitlines()
    except (OSError, TypeError):
        return ""
    body = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return " ".join(body[1:])  # without the def line


@lru_cache(maxsize=1)
def onednn_linear_works() -> bool:
    """True where torch has oneDNN's linear op and it computes what ``F.linear`` does."""
    if not torch.backends.mkldnn.is_available() or not hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    ):
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(3, 5, 64, generator=generator)
        weight = torch.randn(48, 64, generator=generator)
        bias = torch.randn(48, generator=generator)
        with torch.inference_mode():
            plain = _onednn_linear(x, weight, bias)
            gelu = _onednn_linear(x, weight, bias, "gelu", "none")
            reference = F.linear(x, weight, bias)
        return (
            plain.shape == reference.shape
            and torch.allclose(plain, reference, atol=1e-4)
            and torch.allclose(gelu, F.gelu(reference), atol=1e-4)
        )
    except Exception:  # noqa: BLE001 - any failure means: keep torch's default
        return False


@cache
def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def wanted(dtype: torch.dtype) -> bool:
    """Whether float32 CPU linear layers should go through oneDNN (see the module docstring)."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ArgumentError(f"{ENV}={choice!r}: must be one of {', '.join(CHOICES)}")
    if choice in ("mkl", "off") or dtype != torch.float32:
        return False
    if choice == "onednn":
        return onednn_linear_works()
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and _cpu_vendor() not in ("", "GenuineIntel") and onednn_linear_works()


def _is_exact_gelu(module) -> bool:
    from transformers.activations import GELUActivation

    if isinstance(module, torch.nn.GELU):
        return module.approximate == "none"
    return type(module) is GELUActivation and getattr(module, "act", None) is F.gelu


_FUSED: dict = {}  # (fusion, a model's class) -> the fused subclass


def _fuse(module, fusion: type) -> None:
    base = type(module)
    if (fusion, base) not in _FUSED:
        _FUSED[(fusion, base)] = type(base.__name__, (fusion, base), {})
    module.__class__ = _FUSED[(fusion, base)]


def use_onednn_linear(model: torch.nn.Module) -> int:
    """Route ``model``'s float32 inference linear layers through oneDNN; returns how many.

    Changes only the modules' classes (``OneDNNLinear`` is an ``nn.Linear``): parameters, state
    dict and every other path stay as they were.
    """
    changed = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = OneDNNLinear
            changed += 1
    for module in model.modules():
        if isinstance(module, (_FusedGeluIntermediate, _FusedAddOutput)):
            continue
        if not isinstance(getattr(module, "dense", None), torch.nn.Linear):
            continue
        body = _body(type(module))
        act = getattr(module, "intermediate_act_fn", None)
        if body == _INTERMEDIATE and act is not None and _is_exact_gelu(act):
            _fuse(module, _FusedGeluIntermediate)
        elif body == _OUTPUT and isinstance(getattr(module, "LayerNorm", None), torch.nn.LayerNorm):
            _fuse(module, _FusedAddOutput)
    return changed


__all__ = ["ENV", "OneDNNLinear", "onednn_linear_works", "use_onednn_linear", "wanted"]
