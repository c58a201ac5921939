"""The FastAPI app: Cohere v1/Jina, Cohere v2 and TEI rerank routes over one dynamic batcher.

State lives on ``app.state.crossrank`` and the batcher starts in the app's lifespan, so the same
app runs under uvicorn, in tests, or behind ``ray.serve.ingress``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Dict, List, Optional, Tuple, Union

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..results import RankedDocument
from .batcher import BatcherStopped, QueueFull, estimate_tokens
from .limits import BodyLimit, ServeError, error_body, error_response, validation_message
from .schemas import (
    CohereV1Request,
    CohereV2Request,
    TEIRequest,
    check_texts,
    cohere_v1_response,
    cohere_v2_response,
    selection,
    tei_response,
)
from .settings import ServeSettings
from .state import ServiceState, not_ready

logger = logging.getLogger("crossrank.serve")

# TEI (>= 1.9) without "truncate" in the request: its server default --auto-truncate, true
TEI_AUTO_TRUNCATE = True
# TEI's status for a validation error (an input over max_length with truncate false); TEI <= 1.8
# answered 413, TEI 1.9 changed it to 422 ("Fix HTTP error code for validation", #818)
TOO_LONG_STATUS = 422

ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank", "/health", "/info", "/metrics")
OPEN_ROUTES = ("/health",)


def create_app(reranker, settings: Optional[ServeSettings] = None, on_load_error=None) -> FastAPI:
    """The reranking service as an ASGI app, for uvicorn, tests or ``ray.serve.ingress``.

    ``reranker``: a loaded :class:`crossrank.Reranker`, or a function returning one (loaded in a
    background thread at startup; ``/health`` answers 503 until it is ready). ``settings``:
    limits and batching (:class:`ServeSettings`; default: its defaults with ``CROSSRANK_API_KEY``).

    >>> app = create_app(Reranker("BAAI/bge-reranker-base"), ServeSettings(max_documents=200))
    >>> uvicorn.run(app, host="127.0.0.1", port=8080)                  # doctest: +SKIP
    """
    settings = settings if settings is not None else ServeSettings.from_env()
    state = ServiceState(reranker, settings, on_load_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(title="crossrank", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.crossrank = state
    _add_handlers(app, state)
    _add_routes(app, state)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def guard_and_observe(request: Request, call_next):
        started = time.perf_counter()
        path = request.url.path
        route = path if path in ROUTES else "other"
        if (
            settings.api_key is not None
            and path not in OPEN_ROUTES
            and not _authorized(request.headers.get("authorization"), settings.api_key)
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
            except Exception:  # answered 500 by the outer handler; count it here
                _observe(state, route, 500, started)
                raise
        _observe(state, route, response.status_code, started)
        return response

    return app


def _observe(state: ServiceState, route: str, status: int, started: float) -> None:
    state.metrics.requests.labels(route=route, status=str(status)).inc()
    state.metrics.duration.labels(route=route).observe(time.perf_counter() - started)


def _authorized(header: Optional[str], key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    # compare_digest takes the same time whatever prefix matches
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode("utf-8", "surrogatepass"), key.encode("utf-8")
    )


def _add_handlers(app: FastAPI, state: ServiceState) -> None:
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
        logger.exception("request failed", exc_info=error)
        return error_response(request.scope, 500, f"internal error: {type(error).__name__}")

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError):
        return error_response(request.scope, error.status, error.message, headers=error.headers)


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    async def rank(
        request: Union[CohereV1Request, CohereV2Request, TEIRequest],
        texts: List[str],
        field: str,
        normalize: bool = True,
        passage_token_limit: Optional[int] = None,
        truncate: bool = True,
    ) -> Tuple[List[RankedDocument], int]:
        """The request's results, best first, and its estimated tokens: the batcher's raw logits
        (input order) through the request's one selection."""
        try:
            chosen = selection(request, normalize)  # a bad option fails before any scoring
        except ValueError as error:
            raise ServeError(422, str(error)) from None
        query = request.query
        limit = state.settings.max_documents
        if len(texts) > limit:
            raise ServeError(413, f"{field} has {len(texts)} entries; at most {limit} per request")
        try:
            check_texts(texts, field)
        except ValueError as error:
            raise ServeError(422, str(error)) from None
        batcher = state.batcher
        if batcher is None:
            raise ServeError(503, not_ready(state), {"Retry-After": "5"})
        if not truncate:  # tokenizing is work: off the event loop
            too_long = await run_in_threadpool(state.too_long, query, texts, field)
            if too_long is not None:
                raise ServeError(TOO_LONG_STATUS, too_long.message())
        try:
            future = batcher.submit(query, texts, passage_token_limit)
        except QueueFull as error:
            state.metrics.rejected.inc()
            raise ServeError(
                429,
                f"busy: {error}; retry later",
                {"Retry-After": str(state.settings.retry_after_s)},
            ) from None
        except BatcherStopped as error:
            raise ServeError(503, str(error)) from None
        try:
            logits = await asyncio.wrap_future(future)
        except (ValueError, TypeError) as error:
            raise ServeError(422, str(error)) from None
        ranked = chosen.apply(logits, texts, calibration=state.calibration)
        return ranked, estimate_tokens(query, texts, batcher.max_pair_tokens)

    def headers() -> Dict[str, str]:
        return {"X-Crossrank-Model": state.model_name}

    @app.post("/v1/rerank")
    async def rerank_v1(request: CohereV1Request) -> JSONResponse:
        """Cohere v1 / Jina rerank."""
        ranked, tokens = await rank(request, request.texts(), "documents")
        body = cohere_v1_response(ranked, request, state.model_name, tokens)
        return JSONResponse(body, headers=headers())

    @app.post("/v2/rerank")
    async def rerank_v2(request: CohereV2Request) -> JSONResponse:
        """Cohere v2 rerank."""
        ranked, tokens = await rank(
            request, request.texts(), "documents", True, request.max_tokens_per_doc
        )
        return JSONResponse(cohere_v2_response(ranked, tokens), headers=headers())

    @app.post("/rerank")
    async def rerank_tei(request: TEIRequest) -> JSONResponse:
        """TEI rerank: a bare array, normalized scores unless ``raw_scores``.

        ``truncate`` false: a pair the served max_length would cut is a 422 (as TEI >= 1.9);
        left out: cut to fit, as TEI's default ``--auto-truncate``.
        """
        truncate = TEI_AUTO_TRUNCATE if request.truncate is None else request.truncate
        ranked, _ = await rank(
            request, request.texts, "texts", not request.raw_scores, truncate=truncate
        )
        return JSONResponse(tei_response(ranked, request.return_text), headers=headers())

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once the model is loaded, 503 before (or if loading failed)."""
        if state.batcher is None:
            return JSONResponse(error_body(not_ready(state)), status_code=503)
        return JSONResponse({"status": "ok", "model": state.model_name})

    @app.get("/info")
    async def info() -> JSONResponse:
        """Model, device, dtype, backend, max_length and the limits."""
        if state.reranker is None:
            raise ServeError(503, not_ready(state), {"Retry-After": "5"})
        return JSONResponse(state.info())

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)


__all__ = ["create_app", "ServiceState"]
