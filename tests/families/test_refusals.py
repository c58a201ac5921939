"""Checkpoints crossrank would score wrongly are refused before any weights load, with the way out.

- A checkpoint saved with another task's head (token classification, masked LM, question
  answering) would load as a classifier with part of its head random.
- A decoder-type classifier (GPT-2, Qwen3 ``*ForSequenceClassification``) returns a key/value
  cache that the ONNX export cannot trace: ONNX and OpenVINO refuse it and name ``torch``.
"""

from __future__ import annotations

import pytest
import torch

import crossrank.loading
from crossrank import ModelLoadError, Reranker
from crossrank.backends.registry import backends
from crossrank.testing import build_model, save_decoder
from crossrank.testing.decoders import qwen_tokenizer


@pytest.fixture
def no_weight_loads(monkeypatch):
    """Records every weight load (none should happen before a refusal)."""
    loads = []
    monkeypatch.setattr(crossrank.loading, "load_weights", lambda *a, **k: loads.append(a))
    return loads


def _save_bert_head(path, head: str) -> str:
    import transformers

    tokenizer, classifier = build_model("bert")
    model = getattr(transformers, head)(classifier.config)
    model.save_pretrained(path)  # config.json declares architectures=[head]
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny random GPT2ForSequenceClassification (1 logit) with a byte-level BPE tokenizer."""
    import transformers

    torch.manual_seed(0)
    tokenizer = qwen_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("gpt2") / "gpt2"
    transformers.GPT2ForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.parametrize(
    "head, words",
    [
        ("BertForTokenClassification", "token-classification"),
        ("BertForMaskedLM", "masked-LM"),
        ("BertForQuestionAnswering", "question-answering"),
    ],
)
def test_a_non_reranking_head_is_refused_before_loading(tmp_path, no_weight_loads, head, words):
    path = _save_bert_head(tmp_path / head, head)
    with pytest.raises(ModelLoadError) as error:
        Reranker(path, device="cpu")
    message = str(error.value)
    assert f"is saved as {head} (a {words}" in message
    assert "not as a reranking head" in message
    assert f"crossrank train DATA_DIR --model {path} --output DIR" in message
    assert no_weight_loads == []


def test_a_sequence_classifier_still_loads(tmp_path):
    path = _save_bert_head(tmp_path / "seqcls", "BertForSequenceClassification")
    assert isinstance(Reranker(path, device="cpu").compute_score(["q", "p"]), float)


@pytest.mark.parametrize("backend, module", [("onnx", "onnxruntime"), ("openvino", "openvino")])
@pytest.mark.parametrize("kind", ["gpt2", "qwen3-seqcls"])
def test_cache_returning_classifier_is_refused_before_export(
    gpt2_dir, tmp_path, no_weight_loads, backend, module, kind
):
    pytest.importorskip(module)
    path = gpt2_dir if kind == "gpt2" else save_decoder(tmp_path / kind, kind)
    with pytest.raises(ValueError) as error:
        Reranker(path, device="cpu", backend=backend)
    message = str(error.value)
    head = "GPT2" if kind == "gpt2" else "Qwen3"
    assert f"backend={backend!r} cannot export model={path!r}" in message
    assert f"{head}ForSequenceClassification is a decoder-type classifier" in message
    assert "key/value cache" in message and "use backend='torch'" in message
    assert no_weight_loads == []  # refused before loading, so before exporting


def test_cache_refusal_is_declared_by_the_backends():
    declared = {b.name: b.runs_cached_classifiers for b in backends()}
    assert declared == {"torch": True, "onnx": False, "openvino": False}


def test_the_cache_returning_classifier_scores_on_torch(gpt2_dir):
    from transformers import AutoModelForSequenceClassification

    reranker = Reranker(gpt2_dir, device="cpu", max_length=64)
    pairs = [["what does a panda eat?", "bamboo"], ["what does a panda eat?", "Paris"]]
    model = AutoModelForSequenceClassification.from_pretrained(gpt2_dir).eval()
    expected = []
    for feature in reranker.encoder.encode(*zip(*pairs)):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([list(feature["input_ids"])])).logits
        expected.append(float(logits[0, 0]))
    assert reranker.compute_score(pairs) == pytest.approx(expected, abs=1e-5)
    assert expected[0] != pytest.approx(expected[1], abs=1e-4)
