"""Optional OpenTelemetry tracing: a span per request, with queue, tokenization and inference
child spans, continuing the caller's W3C ``traceparent``.

Needs ``pip install 'crossrank[otel]'``. :meth:`Tracing.from_env` exports where the standard
variables say: ``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console`` or ``none``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER``, ... Without a tracer nothing is imported and nothing is recorded.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Optional

OTEL_INSTALL = "pip install 'crossrank[otel]'"


class Tracing:
    """Records the service's spans with ``tracer`` (an OpenTelemetry ``Tracer``), or nothing.

    >>> from opentelemetry.sdk.trace import TracerProvider               # doctest: +SKIP
    >>> app = create_app(reranker, tracing=Tracing(TracerProvider().get_tracer("crossrank")))  # doctest: +SKIP
    """

    def __init__(self, tracer=None) -> None:
        self.tracer = tracer
        self._propagator = None
        if tracer is not None:
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls, service_name: str = "crossrank") -> Tracing:
        """A tracer exporting in batches where the ``OTEL_*`` variables say."""
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError as error:
            raise ImportError(f"tracing needs OpenTelemetry: {OTEL_INSTALL} ({error})") from None
        resource = Resource.create({"service.name": service_name})  # OTEL_SERVICE_NAME wins
        provider = TracerProvider(resource=resource)
        kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if kind == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif kind == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        elif kind != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER={kind!r}: crossrank knows otlp, console, none")
        return cls(provider.get_tracer("crossrank.serve"))

    @contextlib.contextmanager
    def request_span(self, request, route: str) -> Iterator[Optional[object]]:
        """The request's server span (a child of its ``traceparent``), or None untraced."""
        if self.tracer is None:
            yield None
            return
        from opentelemetry.trace import SpanKind

        parent = self._propagator.extract(dict(request.headers))
        name = f"{request.method} {route}"
        with self.tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("url.path", request.url.path)
            yield span

    def finish(self, span, timings, status: int) -> None:
        """The request's attributes, and its queue/tokenization/inference child spans."""
        if span is None:
            return
        from opentelemetry import trace

        span.set_attribute("http.response.status_code", status)
        span.set_attribute("crossrank.request_id", timings.request_id)
        if timings.model is not None:
            span.set_attribute("crossrank.model", timings.model)
            span.set_attribute("crossrank.pairs", timings.pairs)
        if timings.outcome:
            span.set_attribute("crossrank.outcome", timings.outcome)
        if timings.queued_at is None:
            return
        context = trace.set_span_in_context(span)
        start = _epoch_ns(timings.queued_at)
        for name, seconds in (
            ("queue", timings.queue_s),
            ("tokenization", timings.tokenize_s),
            ("inference", timings.inference_s),
        ):
            end = start + int(seconds * 1e9)
            child = self.tracer.start_span(name, context=context, start_time=start)
            child.end(end_time=end)
            start = end


def _epoch_ns(perf: float) -> int:
    """A ``time.perf_counter`` reading as epoch nanoseconds (OpenTelemetry's clock)."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


def _otlp_exporter():
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ImportError(
                "OTEL_TRACES_EXPORTER=otlp needs an OTLP exporter: "
                f"{OTEL_INSTALL} (or set OTEL_TRACES_EXPORTER=console)"
            ) from None
    return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
