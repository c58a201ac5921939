"""The FastAPI app: Cohere v1/Jina, Cohere v2 and TEI rerank routes over each model's batcher.

State lives on ``app.state.crossrank`` and the batchers start in the app's lifespan, so the same
app runs under uvicorn, in tests, or behind ``ray.serve.ingress``. One middleware guards (API
keys), times (TEI's headers, :mod:`crossrank.serve.timing`), counts (Prometheus) and logs (one
JSON access line) every request; the routes are in :mod:`crossrank.serve.routing`.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .limits import BodyLimit, ServeError, error_response, validation_message
from .routing import TEI_AUTO_TRUNCATE, TOO_LONG_STATUS, add_routes
from .settings import ServeSettings
from .state import ServiceState
from .timing import REQUEST_ID_HEADER, TIMINGS_KEY, Timings, access_logger, request_id
from .tracing import Tracing

logger = logging.getLogger("crossrank.serve")

ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank", "/health", "/info", "/metrics", "/v1/models")
RERANK_ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank")
OPEN_ROUTES = ("/health",)


def create_app(
    reranker, settings: Optional[ServeSettings] = None, on_load_error=None, tracing=None
) -> FastAPI:
    """The reranking service as an ASGI app, for uvicorn, tests or ``ray.serve.ingress``.

    ``reranker``: a loaded :class:`crossrank.Reranker`, or a function returning one (loaded in a
    background thread at startup; ``/health`` answers 503 until it is ready); or, to serve
    several models, a dict name → reranker (or function): requests pick one by their ``model``
    field, the first is the default. ``settings``: limits, batching, keys and deadline
    (:class:`ServeSettings`; default: its defaults with ``CROSSRANK_API_KEY``). ``tracing``: a
    :class:`crossrank.serve.tracing.Tracing` (OpenTelemetry spans), default none.

    >>> app = create_app(Reranker("BAAI/bge-reranker-base"), ServeSettings(max_documents=200))
    >>> app = create_app({"en": Reranker(en_path), "multi": Reranker(multi_path)})  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8080)                  # doctest: +SKIP
    """
    settings = settings if settings is not None else ServeSettings.from_env()
    state = ServiceState(reranker, settings, on_load_error)
    tracing = tracing if tracing is not None else Tracing(None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(title="crossrank", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.crossrank = state
    _add_handlers(app)
    add_routes(app, state)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def guard_time_and_log(request: Request, call_next):
        path = request.url.path
        route = path if path in ROUTES else "other"
        timings = Timings(request_id=request_id(request.headers.get(REQUEST_ID_HEADER)))
        request.scope[TIMINGS_KEY] = timings
        with tracing.request_span(request, route) as span:
            if (
                state.keys.required
                and path not in OPEN_ROUTES
                and not state.keys.allows(request.headers.get("authorization"))
            ):
                response: Response = error_response(
                    request.scope,
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                try:
                    response = await call_next(request)
                except Exception as error:  # answered here, so a 500 is timed and logged too
                    response = _internal_error(request, error)
            total = _observe(state, request, route, response.status_code, timings)
            response.headers.update(timings.headers(total))
            tracing.finish(span, timings, response.status_code)
        return response

    return app


def _observe(state: ServiceState, request: Request, route: str, status: int, timings) -> float:
    """Count and log one answered request; returns its total seconds."""
    total = time.perf_counter() - timings.started
    state.metrics.requests.labels(route=route, status=str(status)).inc()
    state.metrics.duration.labels(route=route).observe(total)
    if route in RERANK_ROUTES and timings.model is not None:
        state.metrics.model_requests.labels(model=timings.model, status=str(status)).inc()
    if access_logger.isEnabledFor(logging.INFO):
        client = request.client.host if request.client else None
        access_logger.info(
            timings.access_line(request.method, request.url.path, status, total, client)
        )
    return total


def _internal_error(request: Request, error: Exception) -> Response:
    # the log has the stack; the answer only the error's type, never a trace or its text
    logger.exception("request failed", exc_info=error)
    return error_response(request.scope, 500, f"internal error: {type(error).__name__}")


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        message, detail = validation_message(error.errors())
        return error_response(request.scope, 422, message, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return error_response(
            request.scope, error.status_code, str(error.detail), headers=error.headers
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        return _internal_error(request, error)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError):
        return error_response(request.scope, error.status, error.message, headers=error.headers)


__all__ = ["create_app", "ServiceState", "TEI_AUTO_TRUNCATE", "TOO_LONG_STATUS"]
