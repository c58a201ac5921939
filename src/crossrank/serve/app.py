"""The FastAPI app: Cohere v1/Jina, Cohere v2 and TEI rerank routes over each model's batcher.

State lives on ``app.state.crossrank`` and the batchers start in the app's lifespan, so the same
app runs under uvicorn, in tests, or behind ``ray.serve.ingress``. One middleware
(:mod:`crossrank.serve.guard`) checks keys, times, counts and logs every request; the routes are
in :mod:`crossrank.serve.routing`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .guard import Guard, internal_error
from .limits import BodyLimit, ServeError, error_response, validation_message
from .routing import TEI_AUTO_TRUNCATE, TOO_LONG_STATUS, add_routes
from .settings import ServeSettings
from .state import ServiceState
from .tracing import Tracing


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
    app.add_middleware(Guard, state=state, tracing=tracing)  # outermost: times everything
    return app


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
    async def unanswered(request: Request, error: Exception):
        return internal_error(request.scope, error)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError):
        return error_response(request.scope, error.status, error.message, headers=error.headers)


__all__ = ["create_app", "ServiceState", "TEI_AUTO_TRUNCATE", "TOO_LONG_STATUS"]
