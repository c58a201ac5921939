"""What the LangChain and LlamaIndex wrappers share: where scores come from, and safe copies.

One rule decides where a wrapper's scores come from, so both wrappers (and anyone building their
own) behave the same: exactly one of

- ``model=`` (plus its load options and ``reranker_kwargs``): a :class:`~crossrank.Reranker` is
  loaded here;
- ``reranker=``: an already loaded ``Reranker`` is shared as is;
- ``base_url=`` (plus ``api_key``, ``timeout``): a :class:`RemoteReranker` asks a running
  ``crossrank serve`` (its Cohere-v1-shaped ``POST /v1/rerank``); ``model=`` may name the served
  model.

Example:
    >>> from crossrank.sharing import resolve_reranker
    >>> rr = resolve_reranker("BAAI/bge-reranker-base", reranker_kwargs={"backend": "onnx"})  # doctest: +SKIP
    >>> remote = resolve_reranker(base_url="http://127.0.0.1:8080")                          # doctest: +SKIP
    >>> [hit.index for hit in remote.rank("what is panda?", ["hi", "The giant panda ..."])]  # doctest: +SKIP
    [1, 0]
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

from .client.fusion import ROUTE as FUSED_ROUTE
from .client.fusion import FusedCall
from .inputs import (
    check_documents,
    check_fusion,
    check_fusion_weight,
    check_min_keep,
    check_query,
    check_threshold,
    check_top_k,
)
from .loading import DEFAULT_MODEL
from .reranker import Reranker
from .results import RankedDocument

T = TypeVar("T")

# Load options that the wrappers expose as fields of their own; given in ``reranker_kwargs`` they
# are moved to those fields (split_reranker_kwargs), so a wrapper's dump holds each option once.
LOAD_OPTIONS = ("max_length", "device", "use_fp16", "dtype")
API_KEY_ENV = "CROSSRANK_API_KEY"
# Every keyword Reranker accepts, read once from its signature so new options need no change here.
RERANKER_OPTIONS = tuple(inspect.signature(Reranker.__init__).parameters)[1:]


class RemoteRerankError(RuntimeError):
    """A crossrank server could not be reached or did not answer a rerank request with results."""

    def __init__(self, message: str, url: str, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


def check_sources(
    model: Any = None,
    reranker: Any = None,
    reranker_kwargs: Any = None,
    base_url: Any = None,
    api_key: Any = None,
    load_options: Optional[Mapping[str, Any]] = None,
) -> None:
    """Raise a clear error unless the arguments name exactly one source of scores.

    ``load_options`` holds the load options the caller gave (``None`` counts as not given).

    >>> check_sources(model="m", reranker=Reranker("m"))  # doctest: +SKIP
    ValueError: pass either model= (to load a cross-encoder) or reranker= (...), not both
    """
    given = [name for name, value in (load_options or {}).items() if value is not None]
    if reranker_kwargs is not None and not isinstance(reranker_kwargs, Mapping):
        raise TypeError(
            f"reranker_kwargs must be a dict of Reranker options, got {type(reranker_kwargs).__name__}"
        )
    if reranker_kwargs:
        given.append("reranker_kwargs")
    if reranker is not None:
        if not isinstance(reranker, Reranker):
            raise TypeError(f"reranker must be a crossrank.Reranker, got {type(reranker).__name__}")
        if model is not None:
            raise ValueError(
                "pass either model= (to load a cross-encoder) or reranker= (to share a loaded "
                "crossrank.Reranker), not both"
            )
        if base_url is not None:
            raise ValueError(
                "pass either reranker= (score in this process) or base_url= (score on a crossrank "
                "server), not both"
            )
        if given:
            raise ValueError(
                f"{', '.join(given)} configure loading a model and cannot be combined with "
                "reranker=; set them on the Reranker you pass"
            )
    elif base_url is not None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if given:
            raise ValueError(
                f"{', '.join(given)} configure loading a model and cannot be combined with "
                "base_url=: the server loads its own model (see `crossrank serve --help`)"
            )
    if api_key is not None and base_url is None:
        raise ValueError("api_key is only used with base_url= (a crossrank server); drop it")
    for key in reranker_kwargs or {}:
        _check_reranker_option(key)


def _check_reranker_option(key: Any) -> None:
    if key == "model":
        raise ValueError(
            "reranker_kwargs['model']: pass the model as model=, not in reranker_kwargs"
        )
    if key not in RERANKER_OPTIONS:
        options = ", ".join(n for n in RERANKER_OPTIONS if n not in ("model", *LOAD_OPTIONS))
        raise ValueError(f"reranker_kwargs[{key!r}] is not a Reranker option; options: {options}")


def split_reranker_kwargs(
    reranker_kwargs: Any, load_options: Mapping[str, Any]
) -> Tuple[Any, Dict[str, Any]]:
    """Move the load options found in ``reranker_kwargs`` (``dtype``, ``device``, ...) to
    ``load_options``, so a wrapper keeps each option in one field and its dump rebuilds it.

    The same option given both ways with different values is a ``ValueError`` naming both.

    >>> split_reranker_kwargs({"dtype": "bfloat16", "cache_size": 8}, {"device": "cpu"})
    ({'cache_size': 8}, {'device': 'cpu', 'dtype': 'bfloat16'})
    """
    merged = dict(load_options)
    if not isinstance(reranker_kwargs, Mapping):
        return reranker_kwargs, merged  # None, or a wrong type that check_sources reports
    rest = {}
    for key, value in reranker_kwargs.items():
        if key not in LOAD_OPTIONS:
            rest[key] = value
        elif merged.get(key) is not None and merged[key] != value:
            raise ValueError(
                f"{key} is given twice, as {key}={merged[key]!r} and as "
                f"reranker_kwargs[{key!r}]={value!r}; give it once"
            )
        else:
            merged[key] = value
    return rest, merged


def resolve_reranker(
    model: Union[str, os.PathLike, None] = None,
    reranker: Optional[Reranker] = None,
    reranker_kwargs: Optional[Mapping[str, Any]] = None,
    *,
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    timeout: float = 60.0,
    **load_options: Any,
) -> Union[Reranker, RemoteReranker]:
    """The scorer a wrapper uses: ``reranker`` as is, a :class:`RemoteReranker`, or a new Reranker.

    Args:
        model: hub id or local directory to load (default ``crossrank.DEFAULT_MODEL``); with
            ``base_url``, the model name sent to the server.
        reranker: a loaded ``Reranker`` to share.
        reranker_kwargs: any ``Reranker`` option (``backend``, ``quantize``, ``cache_size``,
            ``long_documents``, ``dtype``, ...), as LlamaIndex's ``cross_encoder_kwargs``.
        base_url, api_key, timeout: score on a crossrank server instead (``api_key`` defaults to
            the ``CROSSRANK_API_KEY`` environment variable; ``timeout`` in seconds).
        **load_options: ``max_length``, ``device``, ``use_fp16``, ``dtype``; ``None`` = default.

    >>> resolve_reranker("cross-encoder/ms-marco-MiniLM-L-6-v2", device="cpu")  # doctest: +SKIP
    Reranker('cross-encoder/ms-marco-MiniLM-L-6-v2', device='cpu', dtype='float32', max_length=512)
    """
    reranker_kwargs, load_options = split_reranker_kwargs(reranker_kwargs, load_options)
    check_sources(model, reranker, reranker_kwargs, base_url, api_key, load_options)
    if reranker is not None:
        return reranker
    if base_url is not None:
        return RemoteReranker(base_url, api_key=api_key, timeout=timeout, model=model)
    options = {name: value for name, value in load_options.items() if value is not None}
    return Reranker(DEFAULT_MODEL if model is None else model, **options, **(reranker_kwargs or {}))


def rank_options(component: Any, first_stage: Callable[[int], float], count: int) -> dict:
    """``rank``'s keyword options from an integration's fields (top_n, score_threshold, min_keep,
    fusion, fusion_weight); with fusion, ``first_stage(i)`` gives document ``i``'s retriever score."""
    options = {
        "top_k": component.top_n,
        "threshold": component.score_threshold,
        "min_keep": component.min_keep,
    }
    if component.fusion is not None:
        options.update(
            first_stage_scores=[first_stage(i) for i in range(count)],
            fusion=component.fusion,
            fusion_weight=component.fusion_weight,
        )
    return options


def dtype_name(reranker: Reranker) -> str:
    """The precision a Reranker scores in, as a string: ``"float32"``, ``"bfloat16"``, ...

    >>> dtype_name(Reranker("BAAI/bge-reranker-base", dtype="bfloat16"))  # doctest: +SKIP
    'bfloat16'
    """
    return str(reranker.dtype).replace("torch.", "")


def copy_shareable(value: T) -> T:
    """Deep-copy ``value``; what cannot be copied (a lock, an open file, a client) is shared.

    Dicts, lists, tuples and sets are rebuilt around such an object, so everything else in them
    is still a private copy.

    >>> import threading
    >>> meta = {"tags": ["a"], "lock": threading.Lock()}
    >>> copied = copy_shareable(meta)
    >>> copied["tags"] is meta["tags"], copied["lock"] is meta["lock"]
    (False, True)
    """
    try:
        return copy.deepcopy(value)
    except (
        Exception
    ):  # deepcopy raises whatever __reduce_ex__ raises: TypeError, PicklingError, ...
        pass
    if isinstance(value, dict):
        return {key: copy_shareable(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [copy_shareable(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(copy_shareable(item) for item in value)  # type: ignore[return-value]
    if isinstance(value, (set, frozenset)):
        return type(value)(value)  # type: ignore[return-value]
    return value


class RemoteReranker:
    """Rerank on a crossrank server: its Cohere-v1-shaped ``POST {base_url}/v1/rerank``.

    ``rank`` and ``arank`` (an ``httpx.AsyncClient``, no thread) take the same arguments and
    return the same :class:`~crossrank.RankedDocument` list as ``Reranker.rank`` with its default
    ``normalize=True``: the server applies the threshold, then ``top_k``, on sigmoid scores. No
    request is sent for no documents or ``top_k=0``. A server that is down, slow (``timeout``
    seconds) or answers anything but 200 raises :class:`RemoteRerankError` naming the URL.
    ``first_stage_scores``/``fusion``/``fusion_weight`` fuse client-side, on the server's raw
    logits, as ``Reranker.rank`` does (:mod:`crossrank.client.fusion`).

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
        check_sources(base_url=base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/v1/rerank"
        self.fused_url = f"{self.base_url}{FUSED_ROUTE}"
        self.model_name = None if model is None else os.fspath(model)
        self.timeout = float(timeout)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        # One pooled client for sync calls (httpx clients are thread-safe); async calls open their
        # own, because an AsyncClient belongs to the event loop it was first used on.
        self._client = httpx.Client(timeout=self.timeout, headers=self._headers)

    def __repr__(self) -> str:
        return f"RemoteReranker({self.base_url!r}, timeout={self.timeout:g})"

    def rank(
        self,
        query: str,
        documents: List[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        min_keep: Optional[int] = None,
        first_stage_scores: Optional[List[float]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
    ) -> List[RankedDocument]:
        """Rerank ``documents`` for ``query`` on the server, best first (see the class docs)."""
        url, body, finish = self._prepare(
            query, documents, top_k, threshold, min_keep, first_stage_scores, fusion, fusion_weight
        )
        if body is None:
            return []
        try:
            response = self._client.post(url, json=body)
        except _httpx().HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return finish(response)

    async def arank(
        self,
        query: str,
        documents: List[str],
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        min_keep: Optional[int] = None,
        first_stage_scores: Optional[List[float]] = None,
        fusion: str = "minmax",
        fusion_weight: float = 0.5,
    ) -> List[RankedDocument]:
        """Like :meth:`rank`, awaiting the answer without blocking the event loop."""
        httpx = _httpx()
        url, body, finish = self._prepare(
            query, documents, top_k, threshold, min_keep, first_stage_scores, fusion, fusion_weight
        )
        if body is None:
            return []
        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
                response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, url) from exc
        return finish(response)

    def close(self) -> None:
        """Close the pooled connections of the sync client."""
        self._client.close()

    def _prepare(self, query, documents, top_k, threshold, min_keep, first_stage, fusion, weight):
        """``(url, body, finish)``: where to send what (body None: nothing to ask), and the reader
        of the answer. With ``first_stage`` the server's raw logits are fused here."""
        if first_stage is not None:
            call = FusedCall.create(
                query, documents, first_stage, fusion, weight, top_k, threshold, min_keep
            )
            body = call.body(self.model_name)
            return self.fused_url, body, lambda response: self._fused_results(response, call)
        check_fusion(fusion), check_fusion_weight(weight)  # checked as Reranker.rank does
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

    def _unreachable(self, exc: Exception, url: Optional[str] = None) -> RemoteRerankError:
        url = url or self.url
        if isinstance(exc, _httpx().TimeoutException):
            message = f"the crossrank server at {url} did not answer within {self.timeout:g} s"
        else:
            message = (
                f"cannot reach the crossrank server at {url} ({type(exc).__name__}: {exc}); "
                "is `crossrank serve` running there?"
            )
        return RemoteRerankError(message, url)

    def _fused_results(self, response: Any, call: FusedCall) -> List[RankedDocument]:
        url, status = self.fused_url, response.status_code
        if status != 200:
            raise RemoteRerankError(self._refusal(response, url), url, status)
        try:
            return call.results(response.json())
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise RemoteRerankError(
                f"the server at {url} did not answer like a crossrank /rerank: {exc!r:.200}",
                url,
                status,
            ) from None

    def _results(self, response: Any, documents: List[str]) -> List[RankedDocument]:
        status = response.status_code
        if status != 200:
            raise RemoteRerankError(self._refusal(response), self.url, status)
        try:
            results = response.json()["results"]
            hits = [
                RankedDocument(
                    index=item["index"],
                    score=float(item["relevance_score"]),
                    text=documents[item["index"]],
                )
                for item in results
            ]
            if any(
                isinstance(h.index, bool) or not isinstance(h.index, int) or h.index < 0
                for h in hits
            ):
                raise ValueError("an index is not a document position")
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise RemoteRerankError(
                f"the server at {self.url} did not answer like a crossrank /v1/rerank: {exc!r:.200}",
                self.url,
                status,
            ) from None
        return hits

    def _refusal(self, response: Any, url: Optional[str] = None) -> str:
        try:
            payload = response.json()
            detail = payload.get("message") or payload.get("detail") or payload
        except ValueError:
            detail = response.text
        status = f"{response.status_code} {response.reason_phrase}".strip()
        message = f"the crossrank server at {url or self.url} answered {status}: {str(detail):.300}"
        if response.status_code == 429:
            retry = response.headers.get("Retry-After")
            message += f" (it is busy{f'; retry after {retry} s' if retry else ''})"
        elif response.status_code in (401, 403):
            message += f" (pass the server's key as api_key= or set {API_KEY_ENV})"
        return message


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - the integrations depend on httpx
        raise ImportError("base_url= (a crossrank server) needs httpx: pip install httpx") from None
    return httpx
