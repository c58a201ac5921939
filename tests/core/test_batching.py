"""Length-ordered token-budget batching returns scores in input order."""

from __future__ import annotations

import tracemalloc

import pytest

import crossrank.families.cross_encoder as encoding_module
import crossrank.pipeline as pipeline_module
from crossrank import Reranker
from crossrank.batching import collate, plan_batches, restore_order
from crossrank.testing import SCORING_PAIRS as PAIRS


def test_plan_batches_orders_longest_first_and_keeps_ties_in_input_order():
    assert plan_batches([3, 10, 2, 10], batch_size=1) == [[1], [3], [0, 2]]
    assert plan_batches([], batch_size=4) == []


def test_plan_batches_respects_token_budget():
    lengths = [100, 100, 100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10]
    batches = plan_batches(lengths, batch_size=2)
    budget = 2 * 100
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= budget
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [0, 1] and len(batches[-1]) > 2  # short items share bigger batches


def test_plan_batches_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1, 2], batch_size=0)


def test_restore_order_undoes_the_permutation():
    batches = [[2, 0], [1]]
    assert restore_order(batches, [[0.2, 0.0], [0.1]]) == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError):
        restore_order([[0, 1]], [[0.5]])


def test_collate_pads_right_and_left():
    feats = [{"input_ids": [5, 6, 7]}, {"input_ids": [8]}]
    right = collate(feats, pad_token_id=0)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = collate(feats, pad_token_id=0, padding_side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_scores_do_not_depend_on_batching(bert_dir, batch_size):
    reranker = Reranker(bert_dir, max_length=48)
    pairs = [list(p) for p in PAIRS] * 3
    one_by_one = [reranker.compute_score(p) for p in pairs]
    batched = reranker.compute_score(pairs, batch_size=batch_size)
    assert batched == pytest.approx(one_by_one, abs=1e-5)


def test_progress_bar_can_be_shown_and_hidden(bert_dir, capsys):
    pairs = [list(p) for p in PAIRS]
    Reranker(bert_dir, max_length=48, show_progress_bar=True).compute_score(pairs)
    assert "Reranking" in capsys.readouterr().err
    Reranker(bert_dir, max_length=48, show_progress_bar=False).compute_score(pairs)
    assert "Reranking" not in capsys.readouterr().err


@pytest.mark.parametrize("long_documents", ["truncate", "maxp"])
def test_many_pairs_are_encoded_and_tokenized_a_chunk_at_a_time(
    bert_dir, monkeypatch, long_documents
):
    reranker = Reranker(bert_dir, max_length=24, batch_size=2, long_documents=long_documents)
    pairs = [[q, f"{p} {i}"] for i in range(4) for q, p in PAIRS]
    whole = reranker.compute_score(pairs)  # fewer pairs than MIN_CHUNK: one chunk

    monkeypatch.setattr(pipeline_module, "MIN_CHUNK", 5)
    monkeypatch.setattr(pipeline_module, "CHUNK_BATCHES", 1)
    monkeypatch.setattr(encoding_module, "TOKENIZE_SLICE", 2)
    encoded, tokenized = [], []
    encoder = reranker.encoder
    for name, sizes in (("encode", encoded), ("encode_windows", encoded), ("_tokenize", tokenized)):
        method = getattr(encoder, name)
        monkeypatch.setattr(
            encoder,
            name,
            lambda texts, *a, _m=method, _s=sizes: _s.append(len(texts)) or _m(texts, *a),
        )
    chunked = reranker.compute_score(pairs)
    assert chunked == pytest.approx(whole, abs=1e-5)
    assert max(encoded) == 5 and sum(encoded) == len(pairs)
    assert max(tokenized) == 2


def test_python_memory_of_scoring_does_not_grow_with_the_input(bert_dir):
    """Token ids of pairs not yet scored are not all held at once (chunks, compact arrays)."""
    reranker = Reranker(bert_dir, max_length=128, batch_size=8)
    filler = " ".join(["giant panda bamboo forest china"] * 40)
    documents = [f"{i} {filler}" for i in range(2048)]

    def peak(count: int) -> int:
        pairs = [["what do pandas eat?", d] for d in documents[:count]]
        tracemalloc.start()
        try:
            reranker.compute_score(pairs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(512), peak(2048)
    # What a call must hold for every pair (its text tuple, its score, the list slots: ~200 B)
    # grows with the input; token ids must not: one pair's 128 ids and types alone take ~900 B
    # (array objects and their dict), so holding them all would add well over 400 B a pair.
    per_pair = (large - small) / (2048 - 512)
    assert per_pair < 400, f"peak Python memory {large} B for 2048 pairs vs {small} B for 512"
