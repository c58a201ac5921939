"""``RemoteReranker``: the :class:`~crossrank.scorer.Scorer` of a running ``crossrank serve``.

It speaks HTTP (httpx) and imports no torch: a process that only asks a server loads no model
code. Its ``rank``/``arank`` take the same arguments as :meth:`crossrank.Reranker.rank`, check
them with the same words before any request is sent, and return the same
:class:`~crossrank.RankedDocument` list.

Example:
    >>> from crossrank.client.remote import RemoteReranker
    >>> remote = RemoteReranker("http://127.0.0.1:8080", api_key="secret")  # doctest: +SKIP
    >>> remote.rank("what is panda?", ["hi", "The giant panda ..."], top_k=1)  # doctest: +SKIP
    [RankedDocument(index=1, score=0.99..., text='The giant panda ...')]
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..inputs import (
    as_pairs,
    check_batch_size,
    check_documents,
    check_fusion,
    check_fusion_weight,
    check_min_keep,
    check_normalize,
    check_query,
    check_threshold,
    check_top_k,
)
from ..results import RankedDocument
from .fusion import ROUTE as RAW_ROUTE
from .fusion import FusedCall

API_KEY_ENV = "CROSSRANK_API_KEY"
COHERE_ROUTE = "/v1/rerank"  # sigmoid (or the server's calibrated) scores, selected there
# What a prepared call is: where to send what (body None: nothing to ask), and the answer's reader.
Prepared = Tuple[str, Optional[Dict[str, Any]], Callable[[Any], List[RankedDocument]]]


class RemoteRerankError(RuntimeError):
    """A crossrank server could not be reached or did not answer a rerank request with results."""

    def __init__(self, message: str, url: str, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class RemoteReranker:
    """Rerank on a crossrank server, through the same interface as a local ``Reranker``.

    With its default ``normalize=True`` and no ``first_stage_scores`` it calls the server's
    Cohere-v1-shaped ``POST {base_url}/v1/rerank``: the server applies the threshold, then
    ``top_k``, on its sigmoid (or calibrated) scores. ``normalize=False`` and fusion
    (``first_stage_scores``/``fusion``/``fusion_weight``) ask the server's raw logits
    (``POST /rerank``) and select here with the core's own code (:mod:`crossrank.client.fusion`),
    as ``Reranker.rank`` does. ``batch_size`` is checked and otherwise left to the server, which
    batches by its token budget. No request is sent for no documents or ``top_k=0``. A server
    that is down, slow (``timeout`` seconds) or answers anything but 200 raises
    :class:`RemoteRerankError` naming the URL. ``arank`` awaits an ``httpx.AsyncClient`` (no
    thread). One instance is safe to share between threads.

    Example:
        >>> remote = RemoteReranker("http://127.0.0.1:8080", api_key="secret")  # doctest: +SKIP
        >>> remote.rank("what is panda?", ["hi", "The giant panda ..."], top_k=1)  # doctest: +SKIP
        [RankedDocument(index=1, score=0.99..., text='The giant panda ...')]
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        timeout: float = 60.0,
        model: Optional[str] = None,
    ) -> None:
        httpx = _httpx()
        check_base_url(base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}{COHERE_ROUTE}"
        self.fused_url = f"{self.base_url}{RAW_ROUTE}"
        self.model_name = None if model is None else os.fspath(model)
        self.timeout = float(timeout)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        # One pooled client for sync calls (httpx clients are thread-safe); async calls open their
        # own, because an AsyncClient belongs to the event loop it was first used on.
        self._client = httpx.Client(timeout=self.timeout, headers=self._headers)

    def __repr__(self) -> str:
        return f"RemoteReranker({self.base_url!r}, timeout={self.timeout:g})"

    def info(self) -> Dict[str, Any]:
        """What scores: the server's URL, the model name sent to it (None: its own), the timeout.

        >>> RemoteReranker("http://127.0.0.1:8080", model="m").info()
        {'base_url': 'http://127.0.0.1:8080', 'model': 'm', 'timeout': 60.0}
        """
        return {"base_url": self.base_url, "model": self.model_name, "timeout": self.timeout}

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        normalize: bool = True,
        batch_size: Optional[int] = None,
        min_keep: int = 0,
        first_stage_scores: Optional[Sequence[float]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
    ) -> List[RankedDocument]:
        """Rerank ``documents`` for ``query`` on the server, best first (see the class docs).

        >>> remote.rank("what is panda?", docs, top_k=3, threshold=0.5)  # doctest: +SKIP
        """
        check_batch_size(batch_size)  # checked as Reranker.rank does; the server batches
        options = (top_k, threshold, normalize, min_keep, first_stage_scores, fusion, fusion_weight)
        return self._send(self._prepare(query, documents, *options))

    async def arank(
        self, query: str, documents: Sequence[str], *args: Any, **options: Any
    ) -> List[RankedDocument]:
        """:meth:`rank` with the same arguments, awaiting the answer without blocking the loop.

        >>> await remote.arank("what is panda?", docs, top_k=3)  # doctest: +SKIP
        """
        httpx = _httpx()
        bound = _RANK.bind(self, query, documents, *args, **options)  # rank's own TypeErrors
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        check_batch_size(arguments.pop("batch_size"))
        url, body, finish = self._prepare(*arguments.values())
        if body is None:
            return []
        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
                response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return finish(response)

    def compute_score(
        self, sentence_pairs: Any, normalize: bool = False, batch_size: Optional[int] = None
    ) -> Union[float, List[float]]:
        """Score one ``[query, passage]`` pair (→ float) or a list of pairs (→ list, input order).

        Raw logits by default, as ``Reranker.compute_score``; ``normalize=True`` gives their
        sigmoid (a server's ``--calibration`` does not apply). One request per distinct query.

        >>> remote.compute_score([["q", "p1"], ["q", "p2"]])  # doctest: +SKIP
        [-8.19, 5.26]
        """
        normalize, _ = check_normalize(normalize), check_batch_size(batch_size)
        single, pairs = as_pairs(sentence_pairs)
        positions: Dict[str, List[int]] = {}
        for i, (query, _) in enumerate(pairs):
            positions.setdefault(query, []).append(i)
        scores = [0.0] * len(pairs)
        for query, where in positions.items():
            texts = [pairs[i][1] for i in where]
            for hit in self._send(self._prepare(query, texts, None, None, normalize, 0, None)):
                scores[where[hit.index]] = hit.score
        return scores[0] if single else scores

    def close(self) -> None:
        """Close the pooled connections of the sync client."""
        self._client.close()

    def _send(self, prepared: Prepared) -> List[RankedDocument]:
        url, body, finish = prepared
        if body is None:
            return []
        try:
            response = self._client.post(url, json=body)
        except _httpx().HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return finish(response)

    def _prepare(
        self, query, documents, top_k, threshold, normalize, min_keep, first_stage, *fusion
    ) -> Prepared:
        """What to ask which route; the raw-logit route where the selection happens here."""
        method, weight = fusion or ("minmax", 0.5)  # compute_score: no fusion
        if first_stage is not None or normalize is not True:
            options = (top_k, threshold, min_keep, normalize)
            call = FusedCall.create(query, documents, first_stage, method, weight, *options)
            body = call.body(self.model_name)
            return self.fused_url, body, lambda response: self._fused_results(response, call)
        check_fusion(method), check_fusion_weight(weight)  # checked as Reranker.rank does
        documents, body = self._body(query, documents, top_k, threshold, min_keep)
        return self.url, body, lambda response: self._results(response, documents)

    def _body(self, query, documents, top_k, threshold, min_keep) -> Tuple[List[str], Any]:
        # The core's own checks: both scorers reject the same arguments with the same words,
        # before any request is sent.
        query = check_query(query)
        documents = check_documents(documents)
        top_k, threshold = check_top_k(top_k), check_threshold(threshold)
        min_keep = check_min_keep(min_keep)
        if not documents or top_k == 0:
            return documents, None
        body: Dict[str, Any] = {"query": query, "documents": documents, "return_documents": False}
        optional = {
            "model": self.model_name,
            "top_n": top_k,
            "score_threshold": threshold,
            "min_keep": min_keep or None,  # only sent when it asks for something
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return documents, body

    def _unreachable(self, exc: Exception, url: str) -> RemoteRerankError:
        if isinstance(exc, _httpx().TimeoutException):
            message = f"the crossrank server at {url} did not answer within {self.timeout:g} s"
        else:
            message = (
                f"cannot reach the crossrank server at {url} ({type(exc).__name__}: {exc}); "
                "is `crossrank serve` running there?"
            )
        return RemoteRerankError(message, url)

    def _fused_results(self, response: Any, call: FusedCall) -> List[RankedDocument]:
        return self._read(response, self.fused_url, "/rerank", call.results)

    def _results(self, response: Any, documents: List[str]) -> List[RankedDocument]:
        def hits(payload: Any) -> List[RankedDocument]:
            found = [
                RankedDocument(
                    index=item["index"],
                    score=float(item["relevance_score"]),
                    text=documents[item["index"]],
                )
                for item in payload["results"]
            ]
            if any(
                isinstance(h.index, bool) or not isinstance(h.index, int) or h.index < 0
                for h in found
            ):
                raise ValueError("an index is not a document position")
            return found

        return self._read(response, self.url, COHERE_ROUTE, hits)

    def _read(self, response: Any, url: str, route: str, parse: Callable) -> List[RankedDocument]:
        """``parse(answer)``, or a :class:`RemoteRerankError` for a refusal or another shape."""
        status = response.status_code
        if status != 200:
            raise RemoteRerankError(self._refusal(response, url), url, status)
        try:
            return parse(response.json())
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise RemoteRerankError(
                f"the server at {url} did not answer like a crossrank {route}: {exc!r:.200}",
                url,
                status,
            ) from None

    def _refusal(self, response: Any, url: str) -> str:
        try:
            payload = response.json()
            detail = payload.get("message") or payload.get("detail") or payload
        except ValueError:
            detail = response.text
        status = f"{response.status_code} {response.reason_phrase}".strip()
        message = f"the crossrank server at {url} answered {status}: {str(detail):.300}"
        if response.status_code == 429:
            retry = response.headers.get("Retry-After")
            message += f" (it is busy{f'; retry after {retry} s' if retry else ''})"
        elif response.status_code in (401, 403):
            message += f" (pass the server's key as api_key= or set {API_KEY_ENV})"
        return message


_RANK = inspect.signature(RemoteReranker.rank)


def check_base_url(base_url: Any) -> str:
    """``base_url`` if it is an http(s) URL, else a ``ValueError`` naming it.

    >>> check_base_url("localhost:8080")
    Traceback (most recent call last):
    ValueError: base_url must be an http:// or https:// URL, got 'localhost:8080'
    """
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
    return base_url


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - the integrations depend on httpx
        raise ImportError("base_url= (a crossrank server) needs httpx: pip install httpx") from None
    return httpx
