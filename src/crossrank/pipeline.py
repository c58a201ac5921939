"""One scoring pipeline for every caller: pairs → raw scores, in input order.

``pairs → distinct pairs → chunks → encode (family) → length-sorted token-budget batches →
collate → backend.logits → family head (float64) → input order (→ MaxP over windows)``

The library (``compute_score``, ``rank``, ``rank_many``), ``crossrank eval``, ``crossrank train``'s
held-out evaluation, the server and the Ray actors all score through :meth:`Pipeline.score`, so a
pair gets the same number whichever way it was asked for. Pairs from many queries share batches.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from tqdm.auto import tqdm

from .batching import collate, plan_batches, restore_order
from .families.base import ModelFamily
from .inputs import check_batch_size, check_lengths
from .loading import cap_max_length
from .prefetch import prefetched
from .windows import max_per_document

# (query, passage), or (query, passage, passage_token_limit) for a passage capped at that many
# tokens when it is tokenized (one request's limit; the served max_length applies in any case).
Pair = Union[Tuple[str, str], Tuple[str, str, Optional[int]]]

# Pairs encoded at once: CHUNK_BATCHES batches' worth, and at least MIN_CHUNK. Memory stays bounded
# by the chunk and the batch however many pairs come in.
CHUNK_BATCHES = 16
MIN_CHUNK = 256
# On an accelerator (a token budget from its memory, :func:`crossrank.devices.max_batch_tokens`):
# no batch computes more than this share of padding, and chunks grow from 2 full batches to
# DEVICE_CHUNK_BATCHES, so the first forward starts after a small chunk is tokenized and later
# chunks are tokenized while the device computes.
MAX_PADDING = 0.05
DEVICE_CHUNK_BATCHES = 16
# Items (chunks, collated batches) a prefetching worker keeps ready ahead of the device.
PREFETCH_DEPTH = 4


@dataclass(frozen=True)
class ScoringStats:
    """Work done by a pipeline since it was built: forward passes (batches) and pairs scored."""

    forward_passes: int = 0
    pairs_scored: int = 0
    features_scored: int = 0  # pairs, or windows of pairs with long_documents="maxp"
    tokenize_seconds: float = 0.0  # time spent encoding (the service's x-tokenization-time)


@dataclass(frozen=True)
class _Chunk:
    """One chunk's encoded features, its batches and what its scores need to come back."""

    pairs: int
    features: list
    owners: Optional[List[int]]  # the pair of each feature (windows), or None: one feature a pair
    batches: List[List[int]]
    encoded_in: float


@dataclass(frozen=True)
class Request:
    """How to score one call's pairs (the reranker's settings, or a call's overrides)."""

    batch_size: int
    max_length: int
    query_max_length: Optional[int] = None
    long_documents: str = "truncate"
    stride: int = 128
    show_progress_bar: bool = False

    @classmethod
    def for_call(
        cls,
        settings,
        batch_size=None,
        max_length=None,
        query_max_length=None,
        tokenizer=None,
        model=None,
    ) -> Request:
        """A reranker's ``settings`` with one call's overrides, each checked; a ``max_length``
        override is capped by the model's own limit (``tokenizer``, ``model.config``)."""
        batch_size = check_batch_size(batch_size) or settings.batch_size
        if max_length is not None or query_max_length is not None:
            max_length, query_max_length = check_lengths(max_length, query_max_length)
            if max_length is not None:
                max_length = cap_max_length(max_length, tokenizer, model.config)
            max_length = max_length or settings.max_length
            if query_max_length is None and (settings.query_max_length or 0) < max_length:
                query_max_length = settings.query_max_length  # FlagReranker keeps its own
            check_lengths(max_length, query_max_length)
        else:
            max_length, query_max_length = settings.max_length, settings.query_max_length
        return cls(
            batch_size=batch_size,
            max_length=max_length,
            query_max_length=query_max_length,
            long_documents=settings.long_documents,
            stride=settings.stride,
            show_progress_bar=settings.show_progress_bar,
        )


def query_pairs(
    queries: Sequence[str],
    texts_per_query: Sequence[Sequence[str]],
    limits: Optional[Sequence[Optional[int]]],
    request: Request,
) -> List[Pair]:
    """Every query's pairs in one list, in order; a query's passage token limit rides along
    on its pairs where it can cut something.

    A truncated passage keeps fewer than ``max_length`` tokens anyway, so a larger limit is
    dropped (those pairs share score-cache entries with unlimited ones); with
    ``long_documents="maxp"`` a limit bounds the windows at any size.

    >>> query_pairs(["q"], [["a", "b"]], [3], Request(batch_size=1, max_length=16))
    [('q', 'a', 3), ('q', 'b', 3)]
    """
    pairs: List[Pair] = []
    for i, (query, texts) in enumerate(zip(queries, texts_per_query)):
        limit = limits[i] if limits else None
        if limit is not None and request.long_documents == "truncate":
            limit = None if limit >= request.max_length else limit
        if limit is None:
            pairs.extend((query, text) for text in texts)
        else:
            pairs.extend((query, text, limit) for text in texts)
    return pairs


def per_query(
    scores: Sequence[float], texts_per_query: Sequence[Sequence[str]]
) -> List[List[float]]:
    """``scores`` of :func:`query_pairs`'s list, split back into one list per query.

    >>> per_query([0.1, 0.2, 0.3], [["a", "b"], ["c"]])
    [[0.1, 0.2], [0.3]]
    """
    result, start = [], 0
    for texts in texts_per_query:
        result.append(list(scores[start : start + len(texts)]))
        start += len(texts)
    return result


def chunk_spans(total: int, first: int, largest: int) -> List[Tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``total`` items, ``first`` long, each next one
    twice as long as the last, up to ``largest``.

    >>> chunk_spans(10, first=2, largest=4)
    [(0, 2), (2, 6), (6, 10)]
    """
    spans, start, size = [], 0, max(1, first)
    while start < total:
        spans.append((start, min(total, start + size)))
        start, size = start + size, min(max(largest, first), size * 2)
    return spans


class Pipeline:
    """Scores (query, passage) pairs with a model family on a backend.

    >>> pipeline = Pipeline(family, backend)                               # doctest: +SKIP
    >>> pipeline.score([("q", "p1"), ("q", "p2")], Request(batch_size=32, max_length=512))  # doctest: +SKIP
    [-8.19, 5.26]
    """

    def __init__(self, family: ModelFamily, backend, prefetch: Optional[bool] = None) -> None:
        self.family = family
        # Tokenize and collate ahead on a worker thread (:mod:`crossrank.prefetch`); None: where
        # the one backend asks for it (an accelerator: ``backend.prefetch``).
        self.prefetch = prefetch
        # One backend, or a list of replicas (one per device) that score batches side by side.
        self.backends = list(backend) if isinstance(backend, (list, tuple)) else [backend]
        self.backend = self.backends[0]
        self._stats_lock = threading.Lock()
        self._stats = ScoringStats()
        self._pool: Optional[ThreadPoolExecutor] = None
        self.batches_per_backend = [0] * len(self.backends)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        if len(self.backends) > 1:
            for replica in self.backends:
                self._free.put(replica)
            # torch releases the GIL in its kernels, so worker threads keep every device busy.
            self._pool = ThreadPoolExecutor(len(self.backends), thread_name_prefix="crossrank")

    @property
    def stats(self) -> ScoringStats:
        return self._stats

    def score(self, pairs: Sequence[Pair], request: Request) -> List[float]:
        """Raw scores of ``pairs`` in input order; each distinct pair is scored once per call.

        Every text is tokenized once, the features sorted by length once (per chunk) and the
        scores put back in input order once; a pair's third item caps its passage's tokens.
        """
        if not pairs:
            return []
        # Identical pairs (hybrid retrieval returns duplicates) get one score, so equal texts
        # always tie exactly instead of differing in the last bits with their row in a batch.
        unique = dict.fromkeys(pairs)
        distinct = pairs if len(unique) == len(pairs) else list(unique)
        del unique  # not held while scoring: memory stays bounded by the chunk
        budget = self.max_batch_tokens(request)
        if budget is None:
            chunk = max(CHUNK_BATCHES * request.batch_size, MIN_CHUNK)
            spans = [(s, s + chunk) for s in range(0, len(distinct), chunk)]
        else:
            rows = max(1, budget // request.max_length)  # full-length pairs in one forward
            first = max(MIN_CHUNK, 2 * rows)
            spans = chunk_spans(len(distinct), first, DEVICE_CHUNK_BATCHES * rows)
        parts = (distinct[start:stop] for start, stop in spans)
        scores: List[float] = []
        with tqdm(
            total=len(distinct),
            desc="Reranking",
            unit="pair",
            disable=not request.show_progress_bar,
        ) as bar:
            if self._prefetching(len(distinct)):
                for part_scores in self._score_prefetched(parts, request, budget):
                    scores.extend(part_scores)
                    bar.update(len(part_scores))
            else:
                for part in parts:
                    scores.extend(self._score_chunk(part, request, budget))
                    bar.update(len(part))
        if len(distinct) == len(pairs):
            return scores
        by_pair = dict(zip(distinct, scores))
        return [by_pair[pair] for pair in pairs]

    def max_batch_tokens(self, request: Request) -> Optional[int]:
        """Tokens one forward may hold on this pipeline's device (None: the CPU's batch_size
        rule); an explicit ``batch_size`` of full-length pairs that is larger still counts."""
        budget_of = getattr(self.backend, "max_batch_tokens", None)
        budget = budget_of(request.max_length) if budget_of is not None else None
        if budget is None:
            return None
        return max(budget, request.batch_size * request.max_length)

    def _prefetching(self, pairs: int) -> bool:
        if len(self.backends) > 1:
            return False  # the replicas' threads already overlap one batch's CPU work with another
        if self.prefetch is not None:
            return self.prefetch
        # A small call (a served request) is one chunk of a batch or two: a worker thread
        # would cost more than the little it could overlap.
        return pairs > MIN_CHUNK and bool(getattr(self.backend, "prefetch", False))

    def _score_chunk(
        self, pairs: Sequence[Pair], request: Request, budget: Optional[int] = None
    ) -> List[float]:
        chunk = self._plan(pairs, request, budget)
        features = chunk.features
        return self._finish(chunk, self._run([[features[i] for i in b] for b in chunk.batches]))

    def _score_prefetched(
        self, parts: Iterator[Sequence[Pair]], request: Request, budget: Optional[int]
    ) -> Iterator[List[float]]:
        """Each part's scores, its features encoded and batches collated on a worker thread."""
        with closing(prefetched(self._prepared(parts, request, budget), PREFETCH_DEPTH)) as ready:
            for chunk in ready:
                batch_scores = [self._scores_of(next(ready)) for _ in chunk.batches]
                with self._stats_lock:
                    self.batches_per_backend[0] += len(chunk.batches)
                yield self._finish(chunk, batch_scores)

    def _prepared(self, parts, request: Request, budget: Optional[int]) -> Iterator:
        """The worker's side: per part its :class:`_Chunk`, then each batch ready for the device
        (collated; in pinned memory where the backend copies to an accelerator)."""
        stage = getattr(self.backend, "stage", None)
        for part in parts:
            chunk = self._plan(part, request, budget)
            yield chunk
            for batch in chunk.batches:
                tensors = self._collated([chunk.features[i] for i in batch])
                yield stage(tensors) if stage is not None else tensors

    def _plan(self, pairs: Sequence[Pair], request: Request, budget: Optional[int]) -> _Chunk:
        """Encode a chunk's pairs and cut its features into batches."""
        encoder = self.family.encoder(request.max_length, request.query_max_length)
        queries, passages = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
        limits = [pair[2] if len(pair) > 2 else None for pair in pairs]
        if all(limit is None for limit in limits):
            limits = None
        owners = None
        started = time.perf_counter()
        if request.long_documents == "maxp":
            features, owners = encoder.encode_windows(queries, passages, request.stride, limits)
        else:
            features = encoder.encode(queries, passages, limits)
        encoded_in = time.perf_counter() - started
        lengths = [len(f["input_ids"]) for f in features]
        if budget is None:
            batches = plan_batches(lengths, request.batch_size)
        else:
            batches = plan_batches(lengths, request.batch_size, budget, MAX_PADDING)
        return _Chunk(len(pairs), features, owners, batches, encoded_in)

    def _finish(self, chunk: _Chunk, batch_scores: List[List[float]]) -> List[float]:
        """A chunk's scores in its pairs' order (the best window's with maxp); stats counted."""
        scores = restore_order(chunk.batches, batch_scores)
        with self._stats_lock:
            old = self._stats
            self._stats = ScoringStats(
                old.forward_passes + len(chunk.batches),
                old.pairs_scored + chunk.pairs,
                old.features_scored + len(chunk.features),
                old.tokenize_seconds + chunk.encoded_in,
            )
        if chunk.owners is not None:
            scores = max_per_document(scores, chunk.owners, chunk.pairs)
        return scores

    def _run(self, batches: List[list]) -> List[List[float]]:
        """Scores of each batch: in turn on one backend, or spread over the replicas."""
        if self._pool is None:
            scores = [self.score_features(batch) for batch in batches]
            with self._stats_lock:
                self.batches_per_backend[0] += len(batches)
            return scores
        futures = [self._pool.submit(self._on_free_replica, batch) for batch in batches]
        return [future.result() for future in futures]

    def _on_free_replica(self, features) -> List[float]:
        replica = self._free.get()
        try:
            scores = self.score_features(features, replica)
            with self._stats_lock:
                self.batches_per_backend[self.backends.index(replica)] += 1
            return scores
        finally:
            self._free.put(replica)

    def score_features(self, features, backend=None) -> List[float]:
        """Raw scores of one batch of encoded features (padded here, run on the backend)."""
        return self._scores_of(self._collated(features), backend)

    def _collated(self, features):
        return collate(features, self.family.pad_token_id, padding_side=self.family.padding_side)

    def _scores_of(self, batch, backend=None) -> List[float]:
        return self.family.head((backend or self.backend).logits(batch)).tolist()
