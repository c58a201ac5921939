"""``RemoteReranker``: the :class:`~crossrank.scorer.Scorer` of a running ``crossrank serve``.

It speaks HTTP (httpx) and imports no torch: a process that only asks a server loads no model
code. Its ``rank``/``arank`` take the same arguments as :meth:`crossrank.Reranker.rank`, check
them with the same words before any request is sent (:mod:`crossrank.client.calls`), and return
the same :class:`~crossrank.RankedDocument` list.

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
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..inputs import as_pairs, check_batch_size, check_normalize
from ..results import RankedDocument, sigmoid
from ..scorer import Scorer
from .calls import COHERE_ROUTE, RAW_ROUTE, RerankCall

API_KEY_ENV = "CROSSRANK_API_KEY"


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
    (``POST /rerank``) and select here with the core's own code (:mod:`crossrank.client.calls`),
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
        self, query: str, documents: Sequence[str], *args: Any, **options: Any
    ) -> List[RankedDocument]:
        """Rerank ``documents`` for ``query`` on the server, best first (see the class docs).

        The arguments are :meth:`crossrank.scorer.Scorer.rank`'s, in the same order.

        >>> remote.rank("what is panda?", docs, top_k=3, threshold=0.5)  # doctest: +SKIP
        """
        call, url, body = self._request(query, documents, *args, **options)
        if body is None:
            return []
        try:
            response = self._client.post(url, json=body)
        except _httpx().HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return self._read(response, url, call)

    async def arank(
        self, query: str, documents: Sequence[str], *args: Any, **options: Any
    ) -> List[RankedDocument]:
        """:meth:`rank` with the same arguments, awaiting the answer without blocking the loop.

        >>> await remote.arank("what is panda?", docs, top_k=3)  # doctest: +SKIP
        """
        httpx = _httpx()
        call, url, body = self._request(query, documents, *args, **options)
        if body is None:
            return []
        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
                response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return self._read(response, url, call)

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
            # the raw logits (normalize=False), so their sigmoid is taken here when asked
            for hit in self.rank(query, texts, normalize=False):
                scores[where[hit.index]] = sigmoid(hit.score) if normalize else hit.score
        return scores[0] if single else scores

    def close(self) -> None:
        """Close the pooled connections of the sync client."""
        self._client.close()

    def _unreachable(self, exc: Exception, url: str) -> RemoteRerankError:
        if isinstance(exc, _httpx().TimeoutException):
            message = f"the crossrank server at {url} did not answer within {self.timeout:g} s"
        else:
            message = (
                f"cannot reach the crossrank server at {url} ({type(exc).__name__}: {exc}); "
                "is `crossrank serve` running there?"
            )
        return RemoteRerankError(message, url)

    def _request(self, *args: Any, **options: Any) -> Tuple[RerankCall, str, Any]:
        """The checked call, its URL and its body (None: nothing to ask)."""
        call = RerankCall.create(*args, **options)
        return call, self.base_url + call.route, call.body(self.model_name)

    def _read(self, response: Any, url: str, call: RerankCall) -> List[RankedDocument]:
        """The call's results, or a :class:`RemoteRerankError` for a refusal or another shape."""
        status = response.status_code
        if status != 200:
            raise RemoteRerankError(self._refusal(response, url), url, status)
        try:
            return call.results(response.json())
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise RemoteRerankError(
                f"the server at {url} did not answer like a crossrank {call.route}: {exc!r:.200}",
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


# rank's one signature is the Protocol's: help(), IDEs and inspect show it.
_SIGNATURE = inspect.signature(Scorer.rank)
RemoteReranker.rank.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
RemoteReranker.arank.__signature__ = _SIGNATURE  # type: ignore[attr-defined]


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
