"""Helpers shared by the service tests (test modules never import each other)."""

from __future__ import annotations

import threading
import time

import pytest

WAIT_S = 60


class GatedReranker:
    """The real reranker behind a gate: score_many records its queries, then waits for the gate."""

    def __init__(self, reranker) -> None:
        self.reranker = reranker
        self.model_name, self.max_length = reranker.model_name, reranker.max_length
        self.gate = threading.Event()
        self.calls = []

    def score_many(self, queries, documents_per_query, **kwargs):
        self.calls.append([(q, len(d)) for q, d in zip(queries, documents_per_query)])
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        return self.reranker.score_many(queries, documents_per_query, **kwargs)


@pytest.fixture
def make_gated():
    """``make_gated(reranker)``: a GatedReranker whose gate opens when the test ends, whatever happens."""
    made = []

    def make(reranker):
        made.append(GatedReranker(reranker))
        return made[-1]

    yield make
    for reranker in made:
        reranker.gate.set()


@pytest.fixture
def wait_for():
    def wait(condition, what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    return wait


@pytest.fixture
def labelled():
    """``labelled(url, 'name{model="en"}')``: one labelled sample of /metrics (0 when absent)."""
    import httpx

    def value(url: str, sample: str, headers=None) -> float:
        for line in httpx.get(f"{url}/metrics", headers=headers, timeout=10).text.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[1])
        return 0.0

    return value
