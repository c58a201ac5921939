"""Batches sized for the device: a token budget from the model and free memory on accelerators,
the caller's batch_size on a CPU, out-of-memory splits either way."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import crossrank.backends.torch as torch_backend
import crossrank.pipeline as pipeline_module
from crossrank import CrossrankWarning, Reranker
from crossrank.batching import plan_batches
from crossrank.devices import MAX_BATCH_TOKENS, max_batch_tokens
from crossrank.pipeline import Request, chunk_spans
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import WORDS
from crossrank.testing.checks import fail_forwards_above

BERT_BASE = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_attention_heads=12)
MINILM = SimpleNamespace(hidden_size=384, intermediate_size=1536, num_attention_heads=12)
GIB = 2**30


def test_budget_grows_with_free_memory_up_to_the_cap():
    small = max_batch_tokens(BERT_BASE, torch.float16, free_bytes=GIB // 4, max_length=512)
    more = max_batch_tokens(BERT_BASE, torch.float16, free_bytes=GIB, max_length=512)
    assert 512 <= small < more < MAX_BATCH_TOKENS
    assert more == pytest.approx(4 * small, rel=0.01)  # linear in the memory it may use
    huge = max_batch_tokens(BERT_BASE, torch.float16, free_bytes=140 * GIB, max_length=512)
    assert huge == MAX_BATCH_TOKENS


def test_budget_follows_the_models_size_and_precision():
    free = GIB // 2
    base16 = max_batch_tokens(BERT_BASE, torch.float16, free, 512)
    assert max_batch_tokens(BERT_BASE, torch.float32, free, 512) == pytest.approx(base16 / 2, 0.01)
    assert max_batch_tokens(MINILM, torch.float16, free, 512) > 1.3 * base16  # narrower layers
    # shorter pairs: smaller attention matrices, more tokens in the same memory
    assert max_batch_tokens(BERT_BASE, torch.float16, free, 96) > base16


def test_budget_always_holds_one_full_pair_and_rejects_nonsense():
    assert max_batch_tokens(BERT_BASE, torch.float16, free_bytes=0, max_length=512) == 512
    with pytest.raises(ValueError, match="free_bytes"):
        max_batch_tokens(BERT_BASE, torch.float16, free_bytes=-1, max_length=512)
    with pytest.raises(ValueError, match="max_length"):
        max_batch_tokens(BERT_BASE, torch.float16, free_bytes=GIB, max_length=0)


def test_plan_with_a_token_budget_fills_each_batch_up_to_it():
    lengths = [100] * 10 + [10] * 50
    batches = plan_batches(lengths, batch_size=2, max_tokens=400)
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    assert [len(b) for b in batches] == [4, 4, 4, 40, 8]  # the third pads two short items
    bounded = plan_batches(lengths, batch_size=2, max_tokens=400, max_padding=0.05)
    assert [len(b) for b in bounded] == [4, 4, 2, 40, 10]  # ... unless padding is bounded
    assert sorted(i for b in batches for i in b) == list(range(60))
    assert plan_batches([700, 5], batch_size=1, max_tokens=512) == [[0], [1]]  # too long: alone
    with pytest.raises(ValueError, match="max_tokens"):
        plan_batches([1], batch_size=1, max_tokens=0)
    with pytest.raises(ValueError, match="max_padding"):
        plan_batches([1], batch_size=1, max_padding=1.0)


def test_chunks_grow_from_first_to_largest_and_cover_everything():
    spans = chunk_spans(1000, first=100, largest=300)
    assert spans[:3] == [(0, 100), (100, 300), (300, 600)]
    assert spans[-1][1] == 1000 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert chunk_spans(0, 10, 20) == []


def test_cpu_backend_keeps_the_callers_batch_size(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, device="cpu", max_length=48, batch_size=2)
    pipeline = reranker._pipeline
    assert pipeline.backend.max_batch_tokens(48) is None
    assert pipeline.max_batch_tokens(Request(batch_size=2, max_length=48)) is None
    assert not pipeline._prefetching(10_000)
    calls = []
    real_plan = pipeline_module.plan_batches
    monkeypatch.setattr(
        pipeline_module,
        "plan_batches",
        lambda *a, **k: calls.append((a[1:], k)) or real_plan(*a, **k),
    )
    reranker.compute_score([list(p) for p in PAIRS])
    assert calls == [((2,), {})]  # the CPU rule, exactly as before


def test_a_device_budget_from_free_memory_batches_by_tokens_with_equal_scores(
    bert_dir, monkeypatch
):
    pairs = [[q, f"{p} {i}"] for i in range(6) for q, p in PAIRS]
    reranker = Reranker(bert_dir, device="cpu", max_length=48, batch_size=2)
    expected = reranker.compute_score(pairs)
    passes = reranker._pipeline.stats.forward_passes
    # what an accelerator with 4 MiB free reports (the CPU backend asks the same function)
    monkeypatch.setattr(torch_backend, "free_device_memory", lambda device: 4 * 2**20)
    budget = reranker._pipeline.max_batch_tokens(Request(batch_size=2, max_length=48))
    config = reranker.model.config
    assert budget == max_batch_tokens(config, torch.float32, 4 * 2**20, 48) > 2 * 48
    got = reranker.compute_score(pairs)
    assert got == pytest.approx(expected, abs=1e-5)
    device_passes = reranker._pipeline.stats.forward_passes - passes
    assert device_passes < passes  # fewer, larger forwards than batch_size=2 asked for


def test_out_of_memory_under_a_device_budget_still_splits(bert_dir, monkeypatch):
    query, passage = PAIRS[0]
    pairs = [[query, f"{passage} {word}"] for word in WORDS[:12]]  # one length: one batch
    reranker = Reranker(bert_dir, device="cpu", max_length=48)
    expected = reranker.compute_score(pairs, batch_size=1)
    monkeypatch.setattr(torch_backend, "free_device_memory", lambda device: 64 * 2**20)
    sizes = fail_forwards_above(reranker.model, 3, monkeypatch)
    with pytest.warns(CrossrankWarning, match="out of memory"):
        got = reranker.compute_score(pairs)
    assert got == pytest.approx(expected, abs=1e-5)
    assert sizes == [12, 6, 3, 3, 6, 3, 3]  # one forward of the whole budget, then halves
