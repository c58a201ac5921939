"""The OpenVINO backend: fp32 scores equal torch's, bf16 and int8 close, options checked, extras
named, the int8 file made once and repaired when damaged."""

from __future__ import annotations

import sys
import threading
import warnings
from pathlib import Path

import pytest

from crossrank import Reranker
from crossrank.errors import CrossrankWarning
from crossrank.settings import Settings
from crossrank.testing import BACKEND_PAIRS as LIST_PAIRS
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import concordant_fraction, reference_scores, save_model


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
        assert concordant_fraction(got, expected) >= 0.9
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


def _int8_files(reranker):
    xml = Path(reranker.info()["onnx_file"])
    return xml, xml.with_suffix(".bin")


@pytest.mark.parametrize("name", ["bert", "xlm-roberta"])
def test_int8_keeps_the_ranking_and_is_made_once(fresh_dirs, name):
    pytest.importorskip("nncf", reason="the openvino extra (nncf) is not installed")
    fp32 = Reranker(fresh_dirs[name], max_length=64, backend="openvino")
    int8 = Reranker(fresh_dirs[name], max_length=64, backend="openvino", quantize="int8")
    expected, got = fp32.compute_score(LIST_PAIRS), int8.compute_score(LIST_PAIRS)
    xml, weights = _int8_files(int8)
    assert xml.name == "model.openvino-int8.xml" and weights.is_file()
    assert int8.info()["quantize"] == "int8" and int8.info()["backend"] == "openvino"
    spread = max(expected) - min(expected)
    differences = [abs(a - b) for a, b in zip(got, expected)]
    assert max(differences) > 1e-6  # int8 really ran: not the float32 model
    assert max(differences) <= 0.3 * spread
    assert concordant_fraction(got, expected) >= 0.85
    before = (xml.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    again = Reranker(fresh_dirs[name], max_length=64, backend="openvino", quantize="int8")
    assert (xml.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before  # cached, not redone
    assert again.compute_score(LIST_PAIRS) == pytest.approx(got, abs=1e-6)


def test_damaged_int8_weights_are_made_again(tmp_path):
    pytest.importorskip("nncf", reason="the openvino extra (nncf) is not installed")
    model_dir = save_model(tmp_path / "bert", "bert")
    first = Reranker(model_dir, max_length=48, backend="openvino", quantize="int8")
    expected = first.compute_score(LIST_PAIRS)
    _, weights = _int8_files(first)
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with pytest.warns(CrossrankWarning, match="damaged"):
        repaired = Reranker(model_dir, max_length=48, backend="openvino", quantize="int8")
    assert repaired.compute_score(LIST_PAIRS) == pytest.approx(expected, abs=1e-6)


def test_int8_calibration_needs_pairs(tmp_path):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    pytest.importorskip("nncf", reason="the openvino extra (nncf) is not installed")
    from crossrank.backends.openvino import quantize_int8

    with pytest.raises(ValueError, match="pairs must hold at least one"):
        quantize_int8(tmp_path / "model.onnx", tmp_path / "int8.xml", encoder=None, pairs=[])


def test_missing_nncf_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    model_dir = save_model(tmp_path / "bert", "bert")
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf → ImportError
    with pytest.raises(ImportError, match=r"quantize='int8' needs nncf.*crossrank\[openvino\]"):
        Reranker(model_dir, backend="openvino", quantize="int8")


def test_missing_openvino_names_the_extra(tmp_path, monkeypatch):
    model_dir = save_model(tmp_path / "bert", "bert")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino → ImportError
    with pytest.raises(ImportError, match=r"pip install crossrank\[openvino\]"):
        Reranker(model_dir, backend="openvino")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "float16"}, "backend='openvino' runs float32 or bfloat16"),
        ({"quantize": "int4"}, r"quantize must be None or 'int8'"),
    ],
)
def test_bad_openvino_options(bert_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reranker(bert_dir, backend="openvino", **kwargs)


def test_openvino_refuses_an_accelerator(bert_dir):
    import torch

    with pytest.raises(ValueError, match="backend='openvino' runs on CPU"):
        Settings(bert_dir, torch.device("cuda"), torch.float32, backend="openvino")
