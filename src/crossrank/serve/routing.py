"""The rerank routes (Cohere v1/Jina, Cohere v2, TEI) and the service's GET routes.

A rerank request picks its model (:meth:`ServiceState.model_for`), is checked, has its texts cut to
what the model can use (:mod:`crossrank.serve.cutting`, off the event loop), waits in that model's
batcher, and is answered with the request's one selection applied to the raw logits. Waiting ends
early when ``request_timeout_s`` passes (504) or the client goes away; either way the request's
unscored pairs leave the queue and the metrics count it.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Dict, List, Optional, Tuple, Union

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ..results import RankedDocument
from .batcher import BatcherStopped, QueueFull, estimate_tokens
from .cutting import cut_text
from .jsonio import FastJSONResponse
from .limits import ServeError, error_body
from .models import MODEL_HEADER, ModelState
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
from .state import ServiceState
from .timing import TIMINGS_KEY, Timings

# TEI (>= 1.9) without "truncate" in the request: its server default --auto-truncate, true
TEI_AUTO_TRUNCATE = True
# TEI's status for a validation error (an input over max_length with truncate false); TEI <= 1.8
# answered 413, TEI 1.9 changed it to 422 ("Fix HTTP error code for validation", #818)
TOO_LONG_STATUS = 422
CLIENT_GONE_STATUS = 499  # logged only: nobody reads it (nginx's "client closed request")

AnyRequest = Union[CohereV1Request, CohereV2Request, TEIRequest]


def add_routes(app: FastAPI, state: ServiceState) -> None:
    """Add the rerank, health, info, models and metrics routes over ``state``."""

    async def rank(
        http: Request,
        request: AnyRequest,
        texts: List[str],
        field: str,
        normalize: bool = True,
        passage_token_limit: Optional[int] = None,
        truncate: bool = True,
    ) -> Tuple[List[RankedDocument], int, ModelState]:
        """The request's results, best first, its estimated tokens and the model that scored."""
        timings: Timings = http.scope.get(TIMINGS_KEY) or Timings()
        model = state.model_for(request.model, http.headers.get(MODEL_HEADER))
        timings.model = model.model_name
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
        batcher = model.batcher
        if batcher is None:
            raise ServeError(503, model.not_ready(), {"Retry-After": "5"})
        if not truncate:  # tokenizing is work: off the event loop
            too_long = await run_in_threadpool(model.too_long, query, texts, field)
            if too_long is not None:
                raise ServeError(TOO_LONG_STATUS, too_long.message())
        bound = model.text_bound
        scored_query, scored_texts = query, texts
        if bound is not None and (len(query) > bound or any(len(t) > bound for t in texts)):
            started = time.perf_counter()  # a huge text: cut it to what the model can use
            scored_query, scored_texts = await run_in_threadpool(_cut_all, query, texts, bound)
            timings.tokenize_s += time.perf_counter() - started
        timings.pairs = len(texts)
        try:
            ticket = batcher.submit(scored_query, scored_texts, passage_token_limit)
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
            logits = await _wait(http, ticket, model, state, timings)
        except (ValueError, TypeError) as error:
            raise ServeError(422, str(error)) from None
        finally:
            timings.add(ticket)
        ranked = chosen.apply(logits, texts, calibration=model.calibration)
        finite(ranked, field)
        return ranked, estimate_tokens(query, texts, batcher.max_pair_tokens), model

    async def _wait(http: Request, ticket, model: ModelState, state, timings: Timings):
        """The ticket's logits; 504 past the deadline; a client gone drops the request."""
        timeout = state.settings.request_timeout_s
        left = None if timeout is None else timings.started + timeout - time.perf_counter()
        waiter = asyncio.wrap_future(ticket)
        watcher = asyncio.ensure_future(_disconnected(http))
        try:
            done, _ = await asyncio.wait(
                {waiter, watcher}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                return waiter.result()
            if watcher in done:
                _drop(model, state, ticket, timings, "disconnect")
                raise ServeError(CLIENT_GONE_STATUS, "the client went away")
            _drop(model, state, ticket, timings, "timeout")
            raise ServeError(
                504, f"request_timeout_s: not scored within {timeout:g} s; retry later"
            )
        except asyncio.CancelledError:  # the server cancelled the handler: the client is gone
            _drop(model, state, ticket, timings, "disconnect")
            raise
        finally:
            watcher.cancel()

    def headers(model: ModelState) -> Dict[str, str]:
        return {MODEL_HEADER: model.model_name}

    @app.post("/v1/rerank")
    async def rerank_v1(request: CohereV1Request, http: Request) -> FastJSONResponse:
        """Cohere v1 / Jina rerank."""
        ranked, tokens, model = await rank(http, request, request.texts(), "documents")
        body = cohere_v1_response(ranked, request, model.model_name, tokens)
        return FastJSONResponse(body, headers=headers(model))

    @app.post("/v2/rerank")
    async def rerank_v2(request: CohereV2Request, http: Request) -> FastJSONResponse:
        """Cohere v2 rerank."""
        ranked, tokens, model = await rank(
            http, request, request.texts(), "documents", True, request.max_tokens_per_doc
        )
        return FastJSONResponse(cohere_v2_response(ranked, tokens), headers=headers(model))

    @app.post("/rerank")
    async def rerank_tei(request: TEIRequest, http: Request) -> FastJSONResponse:
        """TEI rerank: a bare array, normalized scores unless ``raw_scores``.

        ``truncate`` false: a pair the served max_length would cut is a 422 (as TEI >= 1.9);
        left out: cut to fit, as TEI's default ``--auto-truncate``. With several models the
        ``X-Crossrank-Model`` header (or a ``model`` field) picks one; else the default.
        """
        truncate = TEI_AUTO_TRUNCATE if request.truncate is None else request.truncate
        ranked, _, model = await rank(
            http, request, request.texts, "texts", not request.raw_scores, truncate=truncate
        )
        return FastJSONResponse(tei_response(ranked, request.return_text), headers=headers(model))

    @app.get("/health")
    async def health() -> FastJSONResponse:
        """200 once every model is loaded, 503 before (or if loading failed)."""
        if not state.ready:
            return FastJSONResponse(error_body(state.not_ready()), status_code=503)
        body = {"status": "ok", "model": state.model_name}
        if len(state.models) > 1:
            body["models"] = state.names
        return FastJSONResponse(body)

    @app.get("/info")
    async def info() -> FastJSONResponse:
        """Model, device, dtype, backend, max_length and the limits; every model under models."""
        if state.reranker is None:
            raise ServeError(503, state.default.not_ready(), {"Retry-After": "5"})
        return FastJSONResponse(state.info())

    @app.get("/v1/models")
    async def models() -> FastJSONResponse:
        """The served models (OpenAI's list shape), each with its settings."""
        return FastJSONResponse(state.model_list())

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)


async def _disconnected(http: Request) -> None:
    """Returns once the client has gone away (the body is read: only a disconnect comes)."""
    while (await http.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)  # a server that answers at once with no news: never spin


def finite(ranked: List[RankedDocument], field: str) -> None:
    """A score that is not a number is the model's fault, never an answer (JSON has no NaN)."""
    for hit in ranked:
        if not math.isfinite(hit.score):
            raise ServeError(
                500,
                f"the model gave a non-finite score ({hit.score}) for {field}[{hit.index}]; "
                "check its weights and dtype (float16 overflows: try bfloat16 or float32)",
            )


def _cut_all(query: str, texts: List[str], bound: int) -> Tuple[str, List[str]]:
    return cut_text(query, bound), [cut_text(text, bound) for text in texts]


def _drop(model: ModelState, state: ServiceState, ticket, timings: Timings, reason: str) -> None:
    """Take an abandoned request's unscored pairs out of the queue and count it."""
    if timings.outcome is not None:
        return
    timings.outcome = reason
    dropped = model.batcher.cancel(ticket) if model.batcher is not None else 0
    counter = state.metrics.timeouts if reason == "timeout" else state.metrics.disconnects
    counter.labels(model=model.model_name).inc()
    state.metrics.dropped_pairs.labels(model=model.model_name, reason=reason).inc(dropped)
