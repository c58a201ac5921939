"""Backends as objects: the registry says which exist, what each runs and needs, and refuses early."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch

import crossrank
import crossrank.loading
from crossrank import Reranker
from crossrank.backends import registry
from crossrank.backends.registry import backend_names, backends, get_backend, quantizations
from crossrank.settings import Settings
from crossrank.testing import save_decoder

SOURCE = Path(crossrank.__file__).parent


def test_the_registry_names_every_backend_and_refuses_others_by_listing_them():
    assert backend_names() == ("torch", "onnx", "openvino")
    assert [b.name for b in backends()] == list(backend_names())
    assert quantizations() == (None, "int8")
    for name in backend_names():
        assert get_backend(name).name == name
    for bad in ("tensorrt", "ONNX", None, 3):
        with pytest.raises(ValueError, match=r"backend must be 'torch', 'onnx' or 'openvino', got"):
            get_backend(bad)


def test_each_backend_declares_what_it_runs():
    torch_, onnx, openvino = (get_backend(n) for n in ("torch", "onnx", "openvino"))
    for family in ("cross-encoder", "decoder LLM reranker"):
        assert torch_.supports_family(family)
    assert onnx.supports_family("cross-encoder") and openvino.supports_family("cross-encoder")
    assert not onnx.supports_family("decoder LLM reranker")
    assert not openvino.supports_family("decoder LLM reranker")
    assert all(torch_.supports_device_type(t) for t in ("cpu", "cuda", "mps"))
    assert onnx.device_types == openvino.device_types == ("cpu",)
    assert torch_.dtypes is None  # whatever the device runs
    assert onnx.dtypes == ("float32",) and openvino.dtypes == ("float32", "bfloat16")
    assert torch_.quantizations == (None,) and onnx.quantizations == openvino.quantizations
    assert torch_.replicas and torch_.compiles
    assert not any(b.replicas or b.compiles for b in (onnx, openvino))


def test_install_hints():
    assert get_backend("torch").install_hint is None
    assert get_backend("onnx").install_hint == "pip install crossrank[onnx]"
    assert get_backend("openvino").install_hint == "pip install crossrank[openvino]"


@pytest.mark.parametrize(
    "name, quantize, module, message",
    [
        ("onnx", None, "onnxruntime", r"backend='onnx' needs onnxruntime and onnx, which are not"),
        ("openvino", None, "openvino", r"backend='openvino' needs openvino, which is not"),
        ("openvino", "int8", "nncf", r"backend='openvino' with quantize='int8' needs nncf"),
    ],
)
def test_require_names_the_missing_module_and_the_extra(
    monkeypatch, name, quantize, module, message
):
    if quantize is not None:  # the backend's own runtime is checked first: it must be there
        pytest.importorskip(name, reason=f"the {name} extra is not installed")
    backend = get_backend(name)
    monkeypatch.setitem(sys.modules, module, None)  # import module → ImportError
    with pytest.raises(ImportError, match=message) as caught:
        backend.require(quantize)
    assert backend.install_hint in str(caught.value)


def test_nncf_is_needed_for_int8_only(monkeypatch):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setitem(sys.modules, "nncf", None)
    get_backend("openvino").require(None)  # float32 OpenVINO does without NNCF
    with pytest.raises(KeyError, match="not a dependency"):
        get_backend("openvino").import_dependency("numpy")


@pytest.fixture
def weight_loads(monkeypatch):
    loads = []
    monkeypatch.setattr(crossrank.loading, "load_weights", lambda *a, **k: loads.append(a))
    return loads


@pytest.mark.parametrize(
    "kwargs, module",
    [
        ({"backend": "onnx"}, "onnxruntime"),
        ({"backend": "openvino"}, "openvino"),
        ({"backend": "openvino", "quantize": "int8"}, "nncf"),
    ],
)
def test_a_missing_extra_fails_before_any_weights_load(
    bert_dir, monkeypatch, weight_loads, kwargs, module
):
    if module == "nncf":
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install crossrank\["):
        Reranker(bert_dir, **kwargs)
    assert weight_loads == []


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_a_family_the_backend_cannot_run_is_refused_before_weights_load(
    tmp_path, weight_loads, name
):
    pytest.importorskip({"onnx": "onnxruntime"}.get(name, name))
    path = save_decoder(tmp_path / "qwen", "qwen3")
    message = (
        rf"backend='{name}' does not run decoder LLM rerankers; .* is a decoder LLM reranker "
        r"\(runs on backend 'torch'\): use backend='torch'"
    )
    with pytest.raises(ValueError, match=message):
        Reranker(path, device="cpu", backend=name)
    assert weight_loads == []


def test_the_family_is_checked_once(bert_dir, monkeypatch):
    checks = []
    original = registry.Backend.check_family

    def counting(self, family):
        checks.append(self.name)
        return original(self, family)

    monkeypatch.setattr(registry.Backend, "check_family", counting)
    Reranker(bert_dir, max_length=32)
    assert checks == ["torch"]


def _settings(**options):
    options.setdefault("dtype", torch.float32)
    return Settings("some/model", torch.device("cpu"), **options)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"backend": "onnx", "dtype": torch.float16},
            "backend='onnx' runs float32 .*got dtype=float16",
        ),
        (
            {"backend": "openvino", "dtype": torch.float16},
            r"backend='openvino' runs float32 or bfloat16 .*got dtype=float16",
        ),
        ({"quantize": "int4"}, r"quantize must be None or 'int8', got 'int4'"),
        ({"quantize": "int8"}, r"quantize='int8' needs backend='onnx' \(pip install crossrank"),
        ({"backend": "onnx", "compile": True}, "compile=True compiles the torch model"),
        (
            {"backend": "openvino", "devices": (torch.device("cpu"),) * 2},
            "backend='openvino' takes one device",
        ),
    ],
)
def test_settings_a_backend_cannot_run_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        _settings(**options)


def test_a_cpu_backend_refuses_an_accelerator_and_names_the_way_out():
    with pytest.raises(ValueError, match=r"backend='onnx' runs on CPU, got device='cuda'; use "):
        Settings("m", torch.device("cuda"), torch.float32, backend="onnx")


def test_what_each_backend_resolves_auto_and_no_dtype_to(tmp_path):
    for name in ("onnx", "openvino"):
        settings = Settings.create(tmp_path, backend=name)
        assert settings.device == torch.device("cpu") and settings.dtype == torch.float32
    assert Settings.create(tmp_path, backend="openvino", dtype="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="backend='onnx' runs float32 .*got dtype='bfloat16'"):
        Settings.create(tmp_path, backend="onnx", dtype="bfloat16")
    torch_settings = Settings.create(tmp_path, device="cpu")
    assert torch_settings.backend == "torch" and torch_settings.dtype == torch.float32


def _compares_a_backend_name(node: ast.AST, names) -> bool:
    if not isinstance(node, ast.Compare):
        return False
    operands = [node.left, *node.comparators]
    for operand in operands:
        if isinstance(operand, ast.Constant) and operand.value in names:
            return True
        if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) and any(
            isinstance(e, ast.Constant) and e.value in names for e in operand.elts
        ):
            return True
    return False


def _lists_backend_names(node: ast.AST, names) -> bool:
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return False
    found = {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names}
    return len(found) >= 2


def test_no_code_outside_the_registry_asks_which_backend_it_has():
    """Backend names are compared (``== "onnx"``) or listed (``("torch", "onnx", ...)``) in
    crossrank.backends only; everything else asks the registry."""
    names = set(backend_names()) - {"torch"}  # "torch" is also a module and a device word
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if SOURCE / "backends" in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if _compares_a_backend_name(node, names) or _lists_backend_names(
                node, set(backend_names())
            ):
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert offenders == []
