"""Prometheus metrics of one app, in a registry of its own (several apps may share a process)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The service's counters: requests, durations, pairs, batches, queue depth (in total and
    per served model), timeouts, disconnects and the pairs they dropped.

    >>> metrics = Metrics()
    >>> metrics.requests.labels(route="/v1/rerank", status="200").inc()
    >>> b"crossrank_requests_total" in metrics.render()[0]
    True
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "crossrank_requests", "HTTP requests by route and status code", ["route", "status"],
            registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "crossrank_request_duration_seconds", "Time from request received to response sent",
            ["route"], buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.pairs = Counter("crossrank_pairs", "Query-document pairs scored", registry=registry)
        self.batches = Counter(
            "crossrank_batches", "Scoring rounds of the worker (one score_many call each)",
            registry=registry,
        )  # fmt: skip
        self.batch_pairs = Histogram(
            "crossrank_batch_pairs", "Pairs scored per worker round", buckets=BATCH_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.queue_pairs = Gauge(
            "crossrank_queue_pairs", "Accepted pairs not yet scored", registry=registry
        )
        self.rejected = Counter(
            "crossrank_rejected", "Requests refused because the queue was full (429)",
            registry=registry,
        )  # fmt: skip

        # per served model (label "model"): several models in one server each count apart
        self.model_requests = Counter(
            "crossrank_model_requests", "Rerank requests by served model and status code",
            ["model", "status"], registry=registry,
        )  # fmt: skip
        self.model_pairs = Counter(
            "crossrank_model_pairs", "Pairs scored, by model", ["model"], registry=registry
        )
        self.model_batches = Counter(
            "crossrank_model_batches", "Scoring rounds, by model", ["model"], registry=registry
        )
        self.model_queue_pairs = Gauge(
            "crossrank_model_queue_pairs", "Accepted pairs not yet scored, by model", ["model"],
            registry=registry,
        )  # fmt: skip
        self.timeouts = Counter(
            "crossrank_timeouts", "Requests answered 504 after --request-timeout, by model",
            ["model"], registry=registry,
        )  # fmt: skip
        self.disconnects = Counter(
            "crossrank_disconnects", "Requests whose client went away before the answer, by model",
            ["model"], registry=registry,
        )  # fmt: skip
        self.dropped_pairs = Counter(
            "crossrank_dropped_pairs",
            "Queued pairs dropped unscored, by model and reason (timeout, disconnect)",
            ["model", "reason"], registry=registry,
        )  # fmt: skip

    def for_model(self, model: str) -> SimpleNamespace:
        """The labelled series of one served model."""
        return SimpleNamespace(
            pairs=self.model_pairs.labels(model=model),
            batches=self.model_batches.labels(model=model),
            queue_pairs=self.model_queue_pairs.labels(model=model),
        )

    def render(self) -> tuple:
        """(body, content type) of the Prometheus text exposition."""
        return generate_latest(self.registry), self.content_type
