"""Selection: min_keep, raw logits next to scores, ties broken by the logit, no saturation."""

from __future__ import annotations

import pytest
import torch

from crossrank import RankedDocument, Reranker
from crossrank.results import select
from crossrank.testing import build_model


def test_min_keep_survives_any_threshold_but_not_top_k():
    scores, texts = [0.1, 0.4, 0.2], ["a", "b", "c"]
    assert select(scores, texts, threshold=0.9) == []
    assert [d.index for d in select(scores, texts, threshold=0.9, min_keep=2)] == [1, 2]
    assert [d.index for d in select(scores, texts, threshold=0.15, min_keep=1)] == [1, 2]
    assert [d.index for d in select(scores, texts, threshold=0.9, min_keep=2, top_k=1)] == [1]
    assert [d.index for d in select(scores, texts, threshold=0.9, min_keep=5)] == [1, 2, 0]


def test_ties_on_the_score_follow_the_logit_then_input_order():
    scores = [1.0, 1.0, 1.0, 0.5]  # saturated sigmoids
    logits = [40.0, 45.0, 40.0, 0.0]
    ranked = select(scores, ["a", "b", "c", "d"], logits=logits)
    assert [d.index for d in ranked] == [1, 0, 2, 3]
    assert ranked[0] == RankedDocument(index=1, score=1.0, text="b", logit=45.0)


def test_rank_returns_the_raw_logit_next_to_the_score(bert_dir):
    reranker = Reranker(bert_dir, max_length=48)
    docs = ["the giant panda eats bamboo", "a python is a snake", "rain in the sky"]
    hits = reranker.rank("what does a panda eat", docs)
    raw = reranker.compute_score([["what does a panda eat", d] for d in docs])
    for hit in hits:
        assert hit.logit == pytest.approx(raw[hit.index], abs=1e-6)
    assert [h.logit for h in hits] == sorted((h.logit for h in hits), reverse=True)


def test_half_precision_large_logits_do_not_saturate(tmp_path):
    """A float16 model whose top logits are 12 and 14: distinct scores, ordered by the logits."""
    tokenizer, model = build_model("bert")
    with torch.no_grad():  # a head that reads the bias only: logit = bias + 0
        model.classifier.weight.zero_()
    path = tmp_path / "m"
    tokenizer.save_pretrained(path)
    scores = {}
    for bias in (12.0, 14.0):
        with torch.no_grad():
            model.classifier.bias.fill_(bias)
        model.save_pretrained(path)
        reranker = Reranker(str(path), device="cpu", dtype="float16", max_length=48)
        hit = reranker.rank("q", ["p"])[0]
        assert hit.logit == pytest.approx(bias)
        scores[bias] = hit.score
    assert scores[12.0] < scores[14.0] < 1.0  # float64 sigmoid: 0.9999939 vs 0.9999992
