"""The OpenVINO backend: fp32 scores equal torch's, bf16 close, options checked, extra named."""

from __future__ import annotations

import sys
import threading
import warnings

import pytest
from test_onnx_backend import LIST_PAIRS, _concordant_fraction
from test_scores import PAIRS

from crossrank import Reranker
from crossrank.errors import CrossrankWarning
from crossrank.settings import Settings
from crossrank.testing import reference_scores, save_model


@pytest.fixture(scope="module")
def fresh_dirs(tmp_path_factory):
    """Models of this module only, so their exports do not land in the shared test models."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    root = tmp_path_factory.mktemp("openvino-models")
    specs = {"bert": ("bert", 1), "bert-2logit": ("bert", 2), "xlm-roberta": ("xlm-roberta", 1)}
    return {name: save_model(root / name, kind, labels) for name, (kind, labels) in specs.items()}


@pytest.mark.parametrize("name", ["bert", "bert-2logit", "xlm-roberta"])
def test_fp32_scores_equal_torch(fresh_dirs, name):
    torch_scores = Reranker(fresh_dirs[name], max_length=64).compute_score(LIST_PAIRS)
    reranker = Reranker(fresh_dirs[name], max_length=64, batch_size=3, backend="openvino")
    got = reranker.compute_score(LIST_PAIRS)
    assert got == pytest.approx(torch_scores, abs=1e-4)
    assert got == pytest.approx(reference_scores(fresh_dirs[name], LIST_PAIRS, 64), abs=1e-4)
    assert max(got) - min(got) > 1e-2  # the scores differ, so equality says something
    assert reranker.info()["backend"] == "openvino" and reranker.info()["dtype"] == "float32"
    assert reranker.info()["onnx_file"].endswith("model.onnx")
    assert {p.device.type for p in reranker.model.parameters()} == {"meta"}
    query, documents = PAIRS[0][0], [p for _, p in PAIRS]
    expected = Reranker(fresh_dirs[name], max_length=64).rank(query, documents)
    assert [h.index for h in reranker.rank(query, documents)] == [h.index for h in expected]


def test_bfloat16_keeps_the_ranking_or_says_it_runs_float32(fresh_dirs):
    fp32 = Reranker(fresh_dirs["bert"], max_length=64, backend="openvino")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf16 = Reranker(fresh_dirs["bert"], max_length=64, backend="openvino", dtype="bfloat16")
    expected, got = fp32.compute_score(LIST_PAIRS), bf16.compute_score(LIST_PAIRS)
    notes = [str(w.message) for w in caught if issubclass(w.category, CrossrankWarning)]
    if bf16._backend.session.precision == "f32":  # a CPU without native bfloat16
        assert any("no native bfloat16" in note for note in notes)
        assert got == pytest.approx(expected, abs=1e-5)
    else:
        assert not any("no native bfloat16" in note for note in notes)
        spread = max(expected) - min(expected)
        assert max(abs(a - b) for a, b in zip(got, expected)) <= 0.1 * spread
        assert _concordant_fraction(got, expected) >= 0.9
    assert bf16.info()["dtype"] == "bfloat16"


def test_openvino_reuses_the_onnx_export(fresh_dirs):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    onnx = Reranker(fresh_dirs["xlm-roberta"], max_length=48, backend="onnx")
    openvino = Reranker(fresh_dirs["xlm-roberta"], max_length=48, backend="openvino")
    assert openvino.info()["onnx_file"] == onnx.info()["onnx_file"]
    assert openvino.compute_score(LIST_PAIRS) == pytest.approx(
        onnx.compute_score(LIST_PAIRS), abs=1e-4
    )


def test_openvino_is_safe_across_threads(fresh_dirs):
    reranker = Reranker(fresh_dirs["bert"], max_length=48, backend="openvino", batch_size=2)
    expected = reranker.compute_score(LIST_PAIRS)
    results = []

    def worker():
        for _ in range(3):
            results.append(reranker.compute_score(LIST_PAIRS))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 12
    for got in results:
        assert got == pytest.approx(expected, abs=1e-6)


def test_missing_openvino_names_the_extra(tmp_path, monkeypatch):
    model_dir = save_model(tmp_path / "bert", "bert")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    with pytest.raises(ImportError, match=r"pip install crossrank\[openvino\]"):
        Reranker(model_dir, backend="openvino")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "float16"}, "backend='openvino' runs float32 or bfloat16"),
        ({"quantize": "int8"}, r"quantize='int8' needs backend='onnx'"),
    ],
)
def test_bad_openvino_options(bert_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reranker(bert_dir, backend="openvino", **kwargs)


def test_openvino_refuses_an_accelerator(bert_dir):
    import torch

    with pytest.raises(ValueError, match="backend='openvino' runs on CPU"):
        Settings(bert_dir, torch.device("cuda"), torch.float32, backend="openvino")
