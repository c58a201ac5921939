"""Tokenizing and collating ahead on a worker thread changes no score and no order."""

from __future__ import annotations

import threading

import pytest

from crossrank import Reranker
from crossrank.pipeline import Pipeline, Request
from crossrank.prefetch import prefetched
from crossrank.testing import SCORING_PAIRS as PAIRS


def test_prefetched_keeps_order_and_runs_on_another_thread():
    threads = []

    def items():
        for i in range(20):
            threads.append(threading.get_ident())
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(20))
    assert set(threads) == {threads[0]} and threads[0] != threading.get_ident()


def test_prefetched_raises_the_producers_error_in_order():
    def items():
        yield 1
        yield 2
        raise KeyError("broken pair")

    got = []
    with pytest.raises(KeyError, match="broken pair"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_worker():
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert len(produced) <= 4  # what was in flight, not the whole input
    assert not any(t.name == "crossrank-prefetch" for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth"):
        next(prefetched(iter([]), depth=0))


@pytest.mark.parametrize("long_documents", ["truncate", "maxp"])
def test_forced_prefetch_gives_identical_scores_and_order(bert_dir, long_documents):
    reranker = Reranker(bert_dir, max_length=24, batch_size=3, long_documents=long_documents)
    family, backend = reranker.model_family, reranker._pipeline.backend
    pairs = [(q, f"{p} {i}") for i in range(5) for q, p in PAIRS] + [PAIRS[0], PAIRS[0]]
    request = Request(batch_size=3, max_length=24, long_documents=long_documents, stride=4)
    plain = Pipeline(family, backend, prefetch=False)
    ahead = Pipeline(family, backend, prefetch=True)
    assert ahead._prefetching(1) and not plain._prefetching(10_000)
    expected = plain.score(pairs, request)
    got = ahead.score(pairs, request)
    assert got == expected  # the same batches on the same backend: bit for bit
    assert ahead.stats == plain.stats or ahead.stats.forward_passes == plain.stats.forward_passes
    ranked = sorted(range(len(got)), key=lambda i: -got[i])
    assert ranked == sorted(range(len(expected)), key=lambda i: -expected[i])


def test_forced_prefetch_over_many_chunks(bert_dir, monkeypatch):
    import crossrank.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "MIN_CHUNK", 4)
    monkeypatch.setattr(pipeline_module, "CHUNK_BATCHES", 1)
    reranker = Reranker(bert_dir, max_length=24, batch_size=2)
    pairs = [(q, f"{p} {i}") for i in range(4) for q, p in PAIRS]
    request = Request(batch_size=2, max_length=24)
    plain = Pipeline(reranker.model_family, reranker._pipeline.backend, prefetch=False)
    ahead = Pipeline(reranker.model_family, reranker._pipeline.backend, prefetch=True)
    assert ahead.score(pairs, request) == plain.score(pairs, request)
    assert ahead.stats.forward_passes == plain.stats.forward_passes > 4
    assert ahead.batches_per_backend == [ahead.stats.forward_passes]


def test_an_encoding_error_in_the_worker_reaches_the_caller(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=24)
    family = reranker.model_family
    ahead = Pipeline(family, reranker._pipeline.backend, prefetch=True)
    encoder = family.encoder(24, None)

    def broken(*args, **kwargs):
        raise RuntimeError("tokenizer failed")

    monkeypatch.setattr(encoder, "encode", broken)
    with pytest.raises(RuntimeError, match="tokenizer failed"):
        ahead.score(list(PAIRS), Request(batch_size=2, max_length=24))


def test_prefetch_is_automatic_only_where_the_backend_asks_and_the_call_is_large(
    bert_dir, monkeypatch
):
    reranker = Reranker(bert_dir, max_length=24, batch_size=8)
    family, backend = reranker.model_family, reranker._pipeline.backend
    assert backend.prefetch is False  # a CPU: the forward takes every core
    auto = Pipeline(family, backend)
    assert not auto._prefetching(10_000)
    monkeypatch.setattr(type(backend), "prefetch", property(lambda self: True))  # as on CUDA
    assert auto._prefetching(10_000) and not auto._prefetching(20)
    pairs = [(q, f"{p} {i}") for i in range(50) for q, p in PAIRS]
    request = Request(batch_size=8, max_length=24)
    assert auto.score(pairs, request) == Pipeline(family, backend, prefetch=False).score(
        pairs, request
    )
