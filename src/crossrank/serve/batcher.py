"""Dynamic batching: one worker thread merges concurrent requests into shared ``score_many`` calls.

Requests wait in a bounded queue (counted in pairs). The worker takes what is waiting, up to
``max_batch_tokens``, and scores it in one ``Reranker.score_many`` call: the raw logits of every
document in input order, so every score is the number the library gives. Normalized and raw
requests share the call (the logits are the same; the route normalizes and selects, once). The
pipeline beneath tokenizes each text once (a request's ``max_tokens_per_doc`` is a passage token
limit applied then, not a cut string), sorts the round's pairs by length once and cuts them into
model batches by its own real-token budget.

Requests are answered in arrival order: one cut by a full round finishes first in the next. A
request larger than a whole round is taken a budget-sized chunk at a time and goes back to the end
of the queue after each chunk, so small requests behind it are answered between its chunks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Tuple

from .metrics import Metrics

logger = logging.getLogger("crossrank.serve")

# How much of the queue one round takes is decided before anything is tokenized (tokenizing to
# decide would tokenize every text twice, or tokenize on the event loop), so it uses this estimate
# of a pair's tokens. It sizes rounds only, for fairness between requests and the usage report:
# the model batches inside a round are cut by the pipeline from real token counts.
CHARS_PER_TOKEN = 4  # rough subword length
PAIR_SPECIAL_TOKENS = 4


class QueueFull(Exception):
    """The queue holds too many pairs to accept this request now (answer 429)."""


class BatcherStopped(Exception):
    """The service is shutting down and accepts no new work (answer 503)."""


class Ticket(concurrent.futures.Future):
    """A queued request's future (its raw logits) and where its time went, in seconds.

    ``queue_s``: from submit until the worker first took any of its pairs; ``tokenize_s`` and
    ``inference_s``: of the rounds it was scored in (a round's times count for every request in
    it, as TEI counts a batch's inference for each of its requests).
    """

    def __init__(self) -> None:
        super().__init__()
        self.submitted = time.perf_counter()
        self.queue_s = 0.0
        self.tokenize_s = 0.0
        self.inference_s = 0.0


@dataclass(eq=False)
class _Job:
    query: str
    texts: List[str]
    passage_token_limit: Optional[int]
    costs: List[int]
    future: Ticket
    logits: List[Optional[float]] = field(default_factory=list)
    next: int = 0  # first document not yet taken by the worker
    scored: int = 0

    @property
    def untaken(self) -> int:
        return len(self.texts) - self.next


class Batcher:
    """Bounded queue + one scoring thread over a reranker's ``score_many``.

    ``submit`` is cheap and never blocks on the model: it returns a future of the documents' raw
    logits in input order, or raises :class:`QueueFull`.

    >>> batcher = Batcher(rr, max_batch_tokens=16384, max_wait_ms=2, max_queued_pairs=8192)  # doctest: +SKIP
    >>> batcher.start()                                                   # doctest: +SKIP
    >>> batcher.submit("what is panda?", ["hi", "a bear"]).result()       # doctest: +SKIP
    [-7.26, 6.27]
    """

    def __init__(
        self,
        reranker,
        max_batch_tokens: int,
        max_wait_ms: float,
        max_queued_pairs: int,
        metrics: Optional[Metrics] = None,
        model: str = "",
    ) -> None:
        self.reranker = reranker
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queued_pairs = max_queued_pairs
        self.metrics = metrics or Metrics()
        self.model = model  # the metrics' model label
        self._model_metrics = self.metrics.for_model(model)
        self.max_pair_tokens = int(getattr(reranker, "max_length", 512))
        self._pending: Deque[_Job] = collections.deque()
        self._queued_pairs = 0  # accepted and not yet scored (taken or not)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ caller side

    def start(self) -> None:
        """Start the scoring thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="crossrank-serve-worker", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Accept nothing more, score everything already accepted, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queued_pairs(self) -> int:
        """Pairs accepted and not yet scored."""
        return self._queued_pairs

    def submit(
        self, query: str, texts: List[str], passage_token_limit: Optional[int] = None
    ) -> Ticket:
        """Queue one request; the future's result is the raw logits of ``texts``, in input order.

        ``passage_token_limit`` keeps at most that many tokens of each document (Cohere's
        ``max_tokens_per_doc``); the served ``max_length`` applies in any case.
        """
        future = Ticket()
        if not texts:
            future.set_result([])
            return future
        costs = pair_costs(query, texts, self.max_pair_tokens, passage_token_limit)
        job = _Job(query, list(texts), passage_token_limit, costs, future, [None] * len(texts))
        with self._cond:
            if self._stopping:
                raise BatcherStopped("the service is shutting down")
            if self._queued_pairs + len(texts) > self.max_queued_pairs:
                raise QueueFull(
                    f"{self._queued_pairs} pairs are queued; {len(texts)} more would exceed "
                    f"max_queued_pairs={self.max_queued_pairs}"
                )
            self._queued_pairs += len(texts)
            self._count_queued(len(texts))
            self._pending.append(job)
            self._cond.notify_all()
        return future

    def cancel(self, future: concurrent.futures.Future) -> int:
        """Drop a request nobody waits for (deadline passed, client gone): its pairs the worker
        has not taken leave the queue now; pairs of a round already running are scored anyway.
        Returns how many pairs were dropped."""
        with self._cond:
            future.cancel()
            for job in self._pending:
                if job.future is future:
                    self._pending.remove(job)
                    dropped = job.untaken
                    job.next = len(job.texts)
                    self._release(dropped)
                    return dropped
        return 0

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:  # stopping and drained
                    return
                self._wait_for_more()
                pieces = self._take()
            if pieces:
                self._score(pieces)

    def _wait_for_more(self) -> None:
        """Hold the round open up to max_wait for more requests, unless the budget is full."""
        deadline = time.monotonic() + self.max_wait_s
        while not self._stopping and self._untaken_tokens() < self.max_batch_tokens:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _untaken_tokens(self) -> int:
        return sum(sum(job.costs[job.next :]) for job in self._pending)

    def _take(self) -> List[Tuple[_Job, int, int]]:
        """Pieces (job, start, end) for one round, oldest first, within the token budget."""
        pieces, budget = [], self.max_batch_tokens
        while self._pending and budget > 0:
            job = self._pending[0]
            if job.future.cancelled():  # the client went away: free its unscored pairs
                self._pending.popleft()
                self._release(job.untaken)
                continue
            start = end = job.next
            while end < len(job.texts):
                cost = job.costs[end]
                if cost > budget and (pieces or end > start):
                    break  # the round is full; a lone over-budget document still goes alone
                budget -= cost
                end += 1
            if end == start:
                break
            pieces.append((job, start, end))
            job.next = end
            if not job.untaken:
                self._pending.popleft()
                continue
            # The round is full. A request whose rest fits in one round keeps its place at the
            # head and finishes first next round (first come, first answered: equal requests
            # are not all held back until the end); only a request larger than a whole round
            # goes behind the others after each chunk, so it cannot starve the small ones.
            if sum(job.costs[job.next :]) > self.max_batch_tokens:
                self._pending.popleft()
                self._pending.append(job)
            break
        return pieces

    def _release(self, pairs: int) -> None:
        self._queued_pairs -= pairs
        self._count_queued(-pairs)

    def _count_queued(self, pairs: int) -> None:
        # inc/dec, not set: several models' batchers share the unlabelled gauge
        self.metrics.queue_pairs.inc(pairs)
        self._model_metrics.queue_pairs.inc(pairs)

    def _score(self, pieces: List[Tuple[_Job, int, int]]) -> None:
        pairs = sum(end - start for _, start, end in pieces)
        limits = [job.passage_token_limit for job, _, _ in pieces]
        started = time.perf_counter()
        for job in {job for job, _, _ in pieces}:
            if job.future.queue_s == 0.0:
                job.future.queue_s = started - job.future.submitted
        tokenized_before = _tokenize_seconds(self.reranker)
        try:
            logits = self.reranker.score_many(
                [job.query for job, _, _ in pieces],
                [job.texts[start:end] for job, start, end in pieces],
                passage_token_limits=None if all(x is None for x in limits) else limits,
            )
            for (job, start, end), own in zip(pieces, logits):
                job.logits[start:end] = own
        except Exception as error:  # answer every affected request; the worker lives on
            logger.exception("scoring failed")
            self._fail({job for job, _, _ in pieces}, error)
            return
        took = time.perf_counter() - started
        tokenize_s = min(took, max(0.0, _tokenize_seconds(self.reranker) - tokenized_before))
        for job in {job for job, _, _ in pieces}:
            job.future.tokenize_s += tokenize_s
            job.future.inference_s += took - tokenize_s
        self.metrics.batches.inc()
        self.metrics.batch_pairs.observe(pairs)
        self.metrics.pairs.inc(pairs)
        self._model_metrics.batches.inc()
        self._model_metrics.pairs.inc(pairs)
        with self._cond:
            self._release(pairs)
        for job, start, end in pieces:
            job.scored += end - start
            if job.scored == len(job.texts):
                _resolve(job.future, result=job.logits)

    def _fail(self, jobs, error: BaseException) -> None:
        with self._cond:
            for job in jobs:
                if job in self._pending:
                    self._pending.remove(job)
                self._release(len(job.texts) - job.scored)
                job.scored = len(job.texts)
        for job in jobs:
            _resolve(job.future, error=error)


def _tokenize_seconds(reranker) -> float:
    """Seconds the reranker has spent tokenizing so far (0 when it does not say)."""
    stats = getattr(reranker, "stats", None)
    if not callable(stats):
        return 0.0
    return float(stats().get("tokenize_seconds", 0.0))


def pair_costs(
    query: str, texts: List[str], max_pair_tokens: int, passage_token_limit: Optional[int] = None
) -> List[int]:
    """Estimated tokens of each (query, text) pair, capped at the model's max_length (and each
    text at ``passage_token_limit``); see :data:`CHARS_PER_TOKEN` for what the estimate is for."""
    query_cost = len(query) // CHARS_PER_TOKEN + PAIR_SPECIAL_TOKENS
    text_limit = max_pair_tokens if passage_token_limit is None else passage_token_limit
    return [
        min(max_pair_tokens, query_cost + min(text_limit, len(t) // CHARS_PER_TOKEN)) for t in texts
    ]


def estimate_tokens(query: str, texts: List[str], max_pair_tokens: int) -> int:
    """Estimated input tokens of a request (reported as usage, never billed)."""
    return sum(pair_costs(query, texts, max_pair_tokens))


def _resolve(future: concurrent.futures.Future, result=None, error=None) -> None:
    """Set a future's outcome unless its caller already cancelled it."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:  # cancelled in between
        pass
