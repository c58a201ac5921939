"""``CrossRankRanker``: a Haystack ranker component backed by crossrank, local or remote."""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Union

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret, deserialize_secrets_inplace
from pydantic import create_model

from crossrank import integration as common
from crossrank.inputs import check_score
from crossrank.results import RankedDocument
from crossrank.scorer import Scorer
from crossrank.sources import check_sources, describe, open_scorer, wrapper_fields

# The one option table's fields (crossrank.integration), with Haystack's name top_k for top_n.
_SOURCE = (*common.SOURCE_OPTIONS, "base_url", "timeout")
_fields = common.pydantic_fields((*_SOURCE, *common.RANK_OPTIONS))
_fields["top_k"] = _fields.pop("top_n")
_fields.update(meta_fields_to_embed=(Optional[List[str]], None), embedding_separator=(str, "\n"))
_Options = create_model("CrossRankRankerOptions", **_fields)
_RANK = tuple(name for name in common.RANK_OPTIONS if name != "top_n")
_COPIED = ("meta", "embedding", "sparse_embedding", "blob")  # what a caller could see changed
DEFAULT_API_KEY = Secret.from_env_var("CROSSRANK_API_KEY", strict=False)


@component
class CrossRankRanker:
    """Rerank documents for a query with a cross-encoder, best first, keeping the top ``top_k``.

    Scores come from one of ``model`` (loaded by :meth:`warm_up`, with the load options and
    ``reranker_kwargs``), ``reranker`` (a scorer to share) or ``base_url`` (a ``crossrank serve``;
    no torch import). The text scored: ``meta_fields_to_embed`` values and ``Document.content``
    joined by ``embedding_separator``, as Haystack's rankers do. ``score_threshold`` (sigmoid
    score) first, keeping at least ``min_keep``, then ``top_k`` (``0``: none, ``None``: all). The
    result holds new ``Document``s with crossrank's ``score``; the caller's are never changed. With
    ``fusion`` (``"minmax"``, ``"rrf"``) ``Document.score`` is the retriever's score to fuse with;
    the reranker's own goes to ``meta["rerank_score"]``.

    Example:
        .. code-block:: python

            ranker = CrossRankRanker(model="BAAI/bge-reranker-base", top_k=3)
            # or CrossRankRanker(base_url="http://127.0.0.1:8080", top_k=3)
            pipeline.add_component("ranker", ranker)
            pipeline.connect("retriever.documents", "ranker.documents")
            ranker.run(query="What do giant pandas eat?", documents=docs)["documents"][0].score
    """

    def __init__(
        self,
        model: Union[str, os.PathLike, None] = None,
        *,
        reranker: Optional[Scorer] = None,
        reranker_kwargs: Optional[Dict[str, Any]] = None,
        max_length: Optional[int] = None,
        device: Optional[str] = None,
        use_fp16: Optional[bool] = None,
        dtype: Optional[str] = None,
        base_url: Optional[str] = None,
        api_key: Optional[Secret] = DEFAULT_API_KEY,
        timeout: float = 60.0,
        top_k: Optional[int] = 10,
        score_threshold: Optional[float] = None,
        min_keep: int = 0,
        batch_size: Optional[int] = None,
        fusion: Optional[str] = None,
        fusion_weight: float = 0.5,
        meta_fields_to_embed: Optional[List[str]] = None,
        embedding_separator: str = "\n",
    ) -> None:
        given = {name: value for name, value in locals().items() if name in _fields}
        self._options = _Options(**wrapper_fields(given))  # checked before anything loads
        if api_key is not None and not isinstance(api_key, Secret):
            raise TypeError(f"api_key must be a haystack Secret, got {type(api_key).__name__}")
        self.meta_fields_to_embed = list(self._options.meta_fields_to_embed or [])
        self.embedding_separator, self.api_key = self._options.embedding_separator, api_key
        source = {name: getattr(self._options, name) for name in _SOURCE}
        load = {name: source[name] for name in ("max_length", "device", "use_fp16", "dtype")}
        key = None if api_key == DEFAULT_API_KEY else api_key  # a key given without base_url
        check_sources(source["model"], reranker, source["reranker_kwargs"], base_url, key, load)
        self._source, self._lock = SimpleNamespace(**source), threading.Lock()
        self._scorer: Optional[Scorer] = None  # opened now when there is nothing to load
        if reranker is not None or base_url is not None:
            key = api_key.resolve_value() if api_key is not None and base_url else None
            self._source.api_key, self._source.batch_size = key, batch_size
            self._scorer = open_scorer(self._source, reranker).scorer
        self._dumped = describe(reranker) if reranker is not None else source  # rebuilds it

    def warm_up(self) -> None:
        """Load the model (``model=``) once; with ``reranker=`` or ``base_url=`` nothing to do."""
        with self._lock:
            if self._scorer is None:
                self._scorer = open_scorer(self._source).scorer

    @property
    def reranker(self) -> Optional[Scorer]:
        """The scorer in use (a ``RemoteReranker`` with ``base_url``); None before warm_up."""
        return self._scorer

    @component.output_types(documents=List[Document])
    def run(
        self,
        query: str,
        documents: List[Document],
        top_k: Optional[int] = None,
        score_threshold: Optional[float] = None,
    ) -> Dict[str, List[Document]]:
        """``{"documents": [...]}``: new documents, best first; ``top_k`` and ``score_threshold``
        override the component's for this call. Loads the model if :meth:`warm_up` did not."""
        docs, texts, options = self._request(documents, top_k, score_threshold)
        if not docs:
            return {"documents": []}
        self.warm_up()
        return {"documents": _rescored(docs, self._scorer.rank(query, texts, **options))}

    @component.output_types(documents=List[Document])
    async def run_async(self, *args: Any, **kwargs: Any) -> Dict[str, List[Document]]:
        """:meth:`run`'s arguments and answer, awaited without blocking the loop (``arank``)."""
        call = self._run_signature.bind(self, *args, **kwargs)
        call.apply_defaults()
        _, query, documents, top_k, score_threshold = call.arguments.values()
        docs, texts, options = self._request(documents, top_k, score_threshold)
        if not docs:
            return {"documents": []}
        if self._scorer is None:
            await asyncio.get_running_loop().run_in_executor(None, self.warm_up)
        hits = await self._scorer.arank(query, texts, **options)
        return {"documents": _rescored(docs, hits)}

    # Haystack requires run's parameters and annotations on run_async (the same input sockets)
    _run_signature = run_async.__signature__ = inspect.signature(run)  # type: ignore[attr-defined]
    run_async.__annotations__ = dict(run.__annotations__)

    def _request(self, documents: Any, top_k: Any, score_threshold: Any) -> tuple:
        wrap = "a haystack Document; wrap plain text as Document(content=text)"
        docs = common.as_items(documents, "documents", Document, "haystack Document objects", wrap)
        given = {"top_k": top_k, "score_threshold": score_threshold}
        overrides = {name: value for name, value in given.items() if value is not None}
        options = self._options
        if overrides:  # per-call values are checked like the init values
            options = _Options(**{**options.model_dump(), **overrides})
        fields = SimpleNamespace(**{n: getattr(options, n) for n in _RANK}, top_n=options.top_k)
        first_stage = lambda i: _first_stage(docs[i], i, options.fusion)  # noqa: E731
        texts = [self._text(doc) for doc in docs]
        return docs, texts, common.rank_options(fields, first_stage, len(docs))

    def _text(self, doc: Document) -> str:
        meta = [str(doc.meta[key]) for key in self.meta_fields_to_embed if doc.meta.get(key)]
        return self.embedding_separator.join([*meta, doc.content or ""])

    def to_dict(self) -> Dict[str, Any]:
        """Every init parameter; a shared scorer as the fields that rebuild it, the API key as its
        Secret (an environment variable's name: Haystack refuses to write a token)."""
        params = {name: getattr(self._options, name) for name in (*_RANK, "top_k")}
        params.update(meta_fields_to_embed=list(self.meta_fields_to_embed), api_key=self.api_key)
        params.update(embedding_separator=self.embedding_separator, **self._dumped)
        return default_to_dict(self, **params)  # it writes a Secret with Secret.to_dict

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> CrossRankRanker:
        """The component :meth:`to_dict` describes (``data`` is not modified)."""
        data = {**data, "init_parameters": dict(data.get("init_parameters", {}))}
        deserialize_secrets_inplace(data["init_parameters"], keys=["api_key"])
        return default_from_dict(cls, data)


def _first_stage(doc: Document, i: int, fusion: Optional[str]) -> float:
    if doc.score is None:
        raise ValueError(
            f"documents[{i}].score is None: fusion={fusion!r} needs each document's retriever "
            "score; rank documents straight from a retriever, or set fusion=None"
        )
    return check_score(doc.score, f"documents[{i}].score")


def _rescored(docs: List[Document], hits: List[RankedDocument]) -> List[Document]:
    reranked = []
    for hit in hits:
        doc = docs[hit.index]
        copies = {name: common.copy_shareable(getattr(doc, name)) for name in _COPIED}
        new = replace(doc, **copies, score=hit.score)
        if hit.rerank_score is not None:  # fused: the reranker's own score beside the fused one
            new.meta["rerank_score"] = hit.rerank_score
        reranked.append(new)
    return reranked
