"""``CrossRankRerank``: a LlamaIndex node postprocessor backed by crossrank, local or remote."""

from __future__ import annotations

import asyncio
import os
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Literal, Optional, Union

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, SecretStr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.postprocessor.crossrank.nodes import as_nodes, copy_node, require_query

from crossrank import RankedDocument, Reranker
from crossrank.inputs import check_score
from crossrank.sharing import (
    RemoteReranker,
    check_sources,
    dtype_name,
    rank_options,
    resolve_reranker,
    split_reranker_kwargs,
)

dispatcher = get_dispatcher(__name__)


class CrossRankRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder, best first, keeping the top ``top_n``.

    Each node's text (``node.get_content(metadata_mode=...)``) is scored with the query. Scores
    come from exactly one of: ``model`` (loaded here, with ``max_length``/``device``/``use_fp16``/
    ``dtype`` and any other ``crossrank.Reranker`` option in ``reranker_kwargs``), ``reranker`` (a
    loaded ``Reranker`` to share, e.g. with the LangChain compressor), or ``base_url`` (a running
    ``crossrank serve``, with ``api_key`` and ``timeout``; nothing is loaded here).

    Nodes scoring below ``score_threshold`` (a sigmoid score in [0, 1]) are dropped (never leaving
    fewer than ``min_keep``), then the best ``top_n`` kept (``0``: none, ``None``: all, as ``Reranker.rank(top_k=...)``). The result
    holds *new* ``NodeWithScore`` objects: the caller's nodes and their metadata are never
    modified; metadata values that cannot be deep-copied (a lock, an open file) are shared.
    Fields are validated on assignment; those that choose the model are frozen.

    Fusion: with ``fusion="minmax"`` or ``"rrf"`` each node's retriever score
    (``NodeWithScore.score``; a node without one is an error) is fused with the reranker's as
    ``Reranker.rank(first_stage_scores=...)`` does, ``fusion_weight`` being the retriever's
    weight. The returned ``score`` is then the fused score in [0, 1] (``score_threshold`` applies
    to it); ``keep_retrieval_score=True`` keeps the retriever's. With ``base_url`` the server's raw
    scores are fused here, with the same result.

    Example:
        .. code-block:: python

            from llama_index.postprocessor.crossrank import CrossRankRerank

            post = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5, score_threshold=0.3)
            # or CrossRankRerank(base_url="http://127.0.0.1:8080", api_key="...", top_n=5)
            engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[post])
            response = engine.query("What do giant pandas eat?")
            response.source_nodes[0].score  # 0.99...

            # fused with the retriever's similarity, the retriever weighing 0.3
            post = CrossRankRerank(model="BAAI/bge-reranker-base", fusion="minmax", fusion_weight=0.3)
    """

    model: Optional[str] = Field(
        default=None,
        frozen=True,
        description="Hub id or local checkpoint directory of the cross-encoder in use (with "
        "base_url: the model name sent to the server, if any).",
    )
    top_n: Optional[int] = Field(
        default=3, ge=0, description="Nodes to return, best first (0: none); None keeps all."
    )
    score_threshold: Optional[float] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop nodes whose normalized (sigmoid) score is below this, before top_n; "
        "None keeps them all.",
    )
    min_keep: int = Field(
        default=0,
        ge=0,
        description="Keep at least this many nodes (the best) whatever score_threshold drops; "
        "top_n still caps. 0 lets the threshold drop every node.",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Store the retriever's score in the new node's metadata[\"retrieval_score\"].",
    )
    fusion: Optional[Literal["minmax", "rrf"]] = Field(
        default=None,
        description='Fuse with the retriever\'s score (NodeWithScore.score): "minmax" (weighted '
        'min-max) or "rrf" (reciprocal-rank fusion); None ranks on the reranker\'s score alone.',
    )
    fusion_weight: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="With fusion: the weight of the retriever's score (0: the reranker's order, "
        "1: the retriever's).",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Which metadata goes into the text scored for each node.",
    )
    batch_size: Optional[int] = Field(
        default=None,
        ge=1,
        description="Pairs per batch for the longest pairs; None uses the Reranker's own (32). "
        "Not used with base_url (the server batches).",
    )
    max_length: Optional[int] = Field(
        default=None, ge=16, frozen=True, description="Tokens per (query, node) pair in use."
    )
    device: Optional[str] = Field(
        default=None, frozen=True, description='The device in use: "cpu", "cuda:0", "mps", ...'
    )
    use_fp16: Optional[bool] = Field(
        default=None,
        frozen=True,
        description="Half precision as asked (None: yes on CUDA/MPS); see dtype for what is used.",
    )
    dtype: Optional[str] = Field(
        default=None,
        frozen=True,
        description='The precision in use: "float32", "float16" or "bfloat16" (forces it when '
        "given).",
    )
    reranker_kwargs: Optional[Dict[str, Any]] = Field(
        default=None,
        frozen=True,
        description="Any crossrank.Reranker option: backend, quantize, long_documents, "
        "cache_size, ...; load options given here (dtype, device, ...) move to their fields.",
    )
    base_url: Optional[str] = Field(
        default=None,
        frozen=True,
        description="URL of a crossrank server to score on: its POST {base_url}/v1/rerank.",
    )
    api_key: Optional[SecretStr] = Field(
        default=None,
        frozen=True,
        exclude=True,
        description="The server's API key; default: the CROSSRANK_API_KEY environment variable.",
    )
    timeout: float = Field(
        default=60.0, gt=0, frozen=True, description="Seconds to wait for the server's answer."
    )

    model_config = ConfigDict(validate_assignment=True)

    _scorer: Union[Reranker, RemoteReranker] = PrivateAttr()

    def __init__(
        self,
        model: Union[str, os.PathLike, None] = None,
        *,
        reranker: Optional[Reranker] = None,
        reranker_kwargs: Optional[Dict[str, Any]] = None,
        base_url: Optional[str] = None,
        api_key: Union[str, SecretStr, None] = None,
        timeout: float = 60.0,
        top_n: Optional[int] = 3,
        score_threshold: Optional[float] = None,
        min_keep: int = 0,
        keep_retrieval_score: bool = False,
        fusion: Optional[str] = None,
        fusion_weight: float = 0.5,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        batch_size: Optional[int] = None,
        max_length: Optional[int] = None,
        device: Optional[str] = None,
        use_fp16: Optional[bool] = None,
        dtype: Optional[str] = None,
        callback_manager: Optional[CallbackManager] = None,
    ) -> None:
        if isinstance(api_key, SecretStr):  # from a pickled or copied postprocessor's fields
            api_key = api_key.get_secret_value()
        load_options = {"max_length": max_length, "device": device, "use_fp16": use_fp16}
        load_options["dtype"] = dtype
        # reranker_kwargs={"dtype": ...} sets the dtype field: each option lives in one place.
        reranker_kwargs, load_options = split_reranker_kwargs(reranker_kwargs, load_options)
        if isinstance(reranker_kwargs, dict):
            reranker_kwargs = reranker_kwargs or None
        check_sources(model, reranker, reranker_kwargs, base_url, api_key, load_options)
        if base_url is not None and batch_size is not None:
            raise ValueError("batch_size is chosen by the server with base_url=; leave it None")
        super().__init__(
            model=None if model is None else os.fspath(model),
            reranker_kwargs=reranker_kwargs,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            top_n=top_n,
            score_threshold=score_threshold,
            min_keep=min_keep,
            keep_retrieval_score=keep_retrieval_score,
            fusion=fusion,
            fusion_weight=fusion_weight,
            metadata_mode=metadata_mode,
            batch_size=batch_size,
            callback_manager=callback_manager or CallbackManager(),
            **load_options,
        )
        # Fields first, so a bad top_n fails before a model is loaded.
        self._scorer = resolve_reranker(
            self.model,
            reranker,
            reranker_kwargs,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            **load_options,
        )
        if isinstance(self._scorer, Reranker):
            # Describe the model actually in use, so to_dict()/from_dict() rebuild an equivalent
            # one; frozen fields are written directly because they report, they do not choose.
            self.__dict__.update(
                model=self._scorer.model_name,
                device=str(self._scorer.device),
                max_length=self._scorer.max_length,
                dtype=dtype_name(self._scorer),
            )

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    @property
    def reranker(self) -> Optional[Reranker]:
        """The :class:`crossrank.Reranker` doing the scoring (None with ``base_url``)."""
        return self._scorer if isinstance(self._scorer, Reranker) else None

    def _postprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        nodes, query = as_nodes(nodes), require_query(query_bundle)
        texts = [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]
        options = self._options(nodes)
        with self._reranking(nodes, query) as reranked:
            if isinstance(self._scorer, Reranker):
                hits = self._scorer.rank(
                    query.query_str, texts, **options, batch_size=self.batch_size
                )
            else:
                hits = self._scorer.rank(query.query_str, texts, **options)
            reranked.extend(self._rescored(nodes, hits))
        return reranked

    async def apostprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
        query_str: Optional[str] = None,
    ) -> List[NodeWithScore]:
        """Rerank ``nodes`` without blocking the event loop.

        A local model scores in a worker thread (torch releases the GIL); with ``base_url`` the
        request is awaited on an ``httpx.AsyncClient``.
        """
        # Defined here as well: llama-index-core before 0.12.31 has no apostprocess_nodes.
        if query_str is not None and query_bundle is not None:
            raise ValueError("pass either query_bundle or query_str, not both")
        if query_str is not None:
            query_bundle = QueryBundle(query_str)
        return await self._apostprocess_nodes(nodes, query_bundle)

    async def _apostprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        nodes = as_nodes(nodes)  # a generator is read here, not in the worker thread
        if isinstance(self._scorer, Reranker):
            return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
        query = require_query(query_bundle)
        texts = [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]
        options = self._options(nodes)
        with self._reranking(nodes, query) as reranked:
            hits = await self._scorer.arank(query.query_str, texts, **options)
            reranked.extend(self._rescored(nodes, hits))
        return reranked

    def _options(self, nodes: List[NodeWithScore]) -> Dict[str, Any]:
        """``rank``'s selection options, and the fusion options with the retriever's scores."""
        return rank_options(self, lambda i: self._first_stage(nodes[i], i), len(nodes))

    def _first_stage(self, item: NodeWithScore, i: int) -> float:
        if item.score is None:
            raise ValueError(
                f"nodes[{i}].score is None: fusion={self.fusion!r} needs each node's retriever "
                "score; rerank nodes straight from a retriever, or set fusion=None"
            )
        return check_score(item.score, f"nodes[{i}].score")

    @contextmanager
    def _reranking(
        self, nodes: List[NodeWithScore], query: QueryBundle
    ) -> Iterator[List[NodeWithScore]]:
        """Emit the start events, let the caller fill the yielded list, emit the end events."""
        model_name = self.model or self.base_url or ""
        dispatcher.event(
            ReRankStartEvent(
                query=query,
                nodes=nodes,
                top_n=len(nodes) if self.top_n is None else self.top_n,
                model_name=model_name,
            )
        )
        reranked: List[NodeWithScore] = []
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: model_name,
                EventPayload.QUERY_STR: query.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            yield reranked
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))

    def _rescored(
        self, nodes: List[NodeWithScore], hits: List[RankedDocument]
    ) -> List[NodeWithScore]:
        reranked = []
        for hit in hits:
            item = nodes[hit.index]
            node = copy_node(item.node)
            if self.keep_retrieval_score:
                node.metadata["retrieval_score"] = item.score
            reranked.append(NodeWithScore(node=node, score=hit.score))
        return reranked
