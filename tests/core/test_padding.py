"""Batches under a device budget compute little padding on a realistic length spread."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from crossrank.batching import padding_fraction, plan_batches
from crossrank.devices import max_batch_tokens
from crossrank.pipeline import DEVICE_CHUNK_BATCHES, MAX_PADDING, MIN_CHUNK, chunk_spans
from crossrank.testing.lengths import scifact_like_lengths


def planned_padding(lengths, budget, max_length):
    """The padding fraction the pipeline's device path produces: growing chunks, each planned
    with the budget and the padding bound (as ``Pipeline.score`` does)."""
    rows = budget // max_length
    computed = real = 0
    for start, stop in chunk_spans(
        len(lengths), max(MIN_CHUNK, 2 * rows), DEVICE_CHUNK_BATCHES * rows
    ):
        part = lengths[start:stop]
        for batch in plan_batches(part, 32, budget, MAX_PADDING):
            computed += len(batch) * max(part[i] for i in batch)
            real += sum(part[i] for i in batch)
    return 1 - real / computed


def test_padding_fraction_counts_what_a_padded_forward_computes():
    assert padding_fraction([4, 2, 2], [[0, 1], [2]]) == pytest.approx(0.2)
    assert padding_fraction([3, 3], [[0, 1]]) == 0.0
    assert padding_fraction([], []) == 0.0


@pytest.mark.parametrize("pairs", [2048, 6000])
@pytest.mark.parametrize("budget", [16384, 65536])
def test_device_batches_pad_under_five_percent_on_scifact_lengths(pairs, budget):
    lengths = scifact_like_lengths(pairs, max_length=512, seed=pairs)
    assert 300 < sum(lengths) / pairs < 400 and max(lengths) == 512  # SciFact's spread
    assert planned_padding(lengths, budget, 512) < 0.05
    # the padding bound is what holds it: the budget alone pads more where chunks are small
    unbounded = plan_batches(lengths[:MIN_CHUNK], 32, budget)
    assert padding_fraction(lengths[:MIN_CHUNK], unbounded) > 0.05


def test_every_device_batch_respects_the_bound_and_the_budget():
    lengths = scifact_like_lengths(3000, seed=1)
    bert_base = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_attention_heads=12)
    budget = max_batch_tokens(bert_base, torch.float16, free_bytes=2**30, max_length=512)
    batches = plan_batches(lengths, 32, budget, MAX_PADDING)
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= budget
        assert padding_fraction(lengths, [batch]) <= MAX_PADDING
    assert sorted(i for b in batches for i in b) == list(range(3000))
