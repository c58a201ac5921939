"""OpenTelemetry: a span per request with queue/tokenization/inference children, continuing the
caller's W3C traceparent (an in-memory exporter stands in for OTLP)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")
pytest.importorskip("opentelemetry.sdk", reason="crossrank[otel] is not installed")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.serve.tracing import Tracing  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_a_request_span_with_its_stages_under_the_callers_trace(bert_dir):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("test"))
    reranker = Reranker(bert_dir, device="cpu", max_length=128)
    with running_server(create_app(reranker, ServeSettings(), tracing=tracing)) as url:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-request-id": "r-1"}
        response = post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS}, headers=headers)
        assert response.status_code == 200
        untraced = post(f"{url}/rerank", {"query": QUERY, "texts": DOCS})
        assert untraced.status_code == 200
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.name == "POST /v1/rerank"]
    assert len(server) == 1
    root = server[0]
    assert format(root.context.trace_id, "032x") == TRACE_ID  # the caller's trace continues
    assert format(root.parent.span_id, "016x") == PARENT_ID
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["crossrank.request_id"] == "r-1"
    assert root.attributes["crossrank.pairs"] == len(DOCS)
    children = sorted((s for s in spans if s.parent and s.parent.span_id == root.context.span_id),
                      key=lambda s: s.start_time)  # fmt: skip
    assert [s.name for s in children] == ["queue", "tokenization", "inference"]
    assert all(s.start_time <= s.end_time for s in children)
    assert children[0].end_time == children[1].start_time  # one after the other
    inference_ms = (children[2].end_time - children[2].start_time) / 1e6
    assert abs(inference_ms - int(response.headers["x-inference-time"])) <= 1
    tei = [s for s in spans if s.name == "POST /rerank"]
    assert len(tei) == 1 and format(tei[0].context.trace_id, "032x") != TRACE_ID  # a new trace


def test_untraced_by_default_and_exporter_from_the_environment(monkeypatch):
    assert Tracing().tracer is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert Tracing.from_env().tracer is not None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-v0")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        Tracing.from_env()
