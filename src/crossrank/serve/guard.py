"""The one middleware every request passes: API keys, TEI's timing headers, Prometheus counts, the
JSON access log line and the request's trace span.

A plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one runs each request's
route in a task group and streams its answer through a memory channel; here the route runs in the
request's own task and the headers are added to the answer's start message as it passes (with
orjson answers and no idle wait, the request path's overhead on 2 CPU cores roughly halved:
``benchmarks/results/serve_load-2026-12-07-overhead-vs-old-main.json``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .limits import error_response
from .routing import CLIENT_GONE_STATUS
from .timing import REQUEST_ID_HEADER, TIMINGS_KEY, Timings, access_logger, request_id

if TYPE_CHECKING:  # no import cycle at run time: the state is handed in
    from .state import ServiceState
    from .tracing import Tracing

logger = logging.getLogger("crossrank.serve")

ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank", "/health", "/info", "/metrics", "/v1/models")
RERANK_ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank")
OPEN_ROUTES = ("/health",)


class Guard:
    """ASGI middleware: refuse a request without a valid key (401), time, count and log every
    answer (a 500 included: an error the app did not answer is answered here)."""

    def __init__(self, app: ASGIApp, state: ServiceState, tracing: Tracing) -> None:
        self.app, self.state, self.tracing = app, state, tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in ROUTES else "other"
        headers = Headers(scope=scope)
        timings = Timings(request_id=request_id(headers.get(REQUEST_ID_HEADER)))
        scope[TIMINGS_KEY] = timings
        answer = {"status": 500, "total": 0.0, "started": False}

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["started"] = True
                answer["status"] = message["status"]
                answer["total"] = time.perf_counter() - timings.started
                MutableHeaders(scope=message).update(timings.headers(answer["total"]))
            await send(message)

        with self.tracing.request_span(Request(scope), route) as span:
            keys = self.state.keys
            if (
                keys.required
                and path not in OPEN_ROUTES
                and not keys.allows(headers.get("authorization"))
            ):
                refused = error_response(
                    scope,
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refused(scope, receive, timed_send)
            else:
                try:
                    await self.app(scope, receive, timed_send)
                except Exception as error:  # answered here, so a 500 is timed and logged too
                    if answer["started"]:
                        raise  # the answer is on its way: nothing else can be sent
                    await internal_error(scope, error)(scope, receive, timed_send)
            if not answer["started"]:  # nothing was sent: the client left before its body came
                answer["status"] = CLIENT_GONE_STATUS
                answer["total"] = time.perf_counter() - timings.started
            self._observe(scope, route, answer["status"], answer["total"], timings)
            self.tracing.finish(span, timings, answer["status"])

    def _observe(self, scope: Scope, route: str, status: int, total: float, timings) -> None:
        """Count and log one answered request."""
        metrics = self.state.metrics
        metrics.requests.labels(route=route, status=str(status)).inc()
        metrics.duration.labels(route=route).observe(total)
        if route in RERANK_ROUTES and timings.model is not None:
            metrics.model_requests.labels(model=timings.model, status=str(status)).inc()
        if access_logger.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_logger.info(
                timings.access_line(
                    scope["method"], scope["path"], status, total, client[0] if client else None
                )
            )


def internal_error(scope: Scope, error: Exception):
    """The 500 answer: the log has the stack; the answer only the error's type, never a trace or
    its text."""
    logger.exception("request failed", exc_info=error)
    return error_response(scope, 500, f"internal error: {type(error).__name__}")
