"""``CrossRankRerank``: a LlamaIndex node postprocessor backed by a crossrank cross-encoder."""

from __future__ import annotations

import asyncio
import os
from typing import List, Optional, Union

import torch
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from crossrank import DEFAULT_MODEL, Reranker

dispatcher = get_dispatcher(__name__)

_LOAD_OPTIONS = ("max_length", "device", "use_fp16")


class CrossRankRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder, best first, keeping the top ``top_n``.

    Each node's text (``node.get_content(metadata_mode=...)``) is scored together with the query
    by a :class:`crossrank.Reranker`; nodes scoring below ``score_threshold`` (a sigmoid score in
    [0, 1]) are dropped, then the best ``top_n`` are kept. The result holds *new*
    ``NodeWithScore`` objects carrying the reranker's score: the caller's nodes and their metadata
    are never modified. Give either ``model`` (loaded here) or ``reranker`` (an already loaded
    ``Reranker`` to share, e.g. with the LangChain compressor).

    Example:
        .. code-block:: python

            from llama_index.postprocessor.crossrank import CrossRankRerank

            post = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5, score_threshold=0.3)
            engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[post])
            response = engine.query("What do giant pandas eat?")
            response.source_nodes[0].score  # 0.99...
    """

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Hub id or local checkpoint directory of the cross-encoder in use.",
    )
    top_n: Optional[int] = Field(
        default=3, ge=1, description="Nodes to return, best first; None keeps every node."
    )
    score_threshold: Optional[float] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop nodes whose normalized (sigmoid) score is below this, before top_n; "
        "None keeps them all.",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description="Store the retriever's score in the new node's metadata[\"retrieval_score\"].",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED,
        description="Which metadata goes into the text scored for each node.",
    )
    batch_size: Optional[int] = Field(
        default=None,
        ge=1,
        description="Pairs per batch for the longest pairs; None uses the Reranker's own (32).",
    )
    max_length: int = Field(default=512, ge=16, description="Tokens per (query, node) pair.")
    device: str = Field(
        default="auto", description='"auto" (CUDA, then MPS, then CPU), "cpu", "cuda[:N]", "mps".'
    )
    use_fp16: Optional[bool] = Field(
        default=None, description="Half precision; None means yes on CUDA/MPS and no on CPU."
    )

    _reranker: Reranker = PrivateAttr()

    def __init__(
        self,
        model: Union[str, os.PathLike, None] = None,
        *,
        reranker: Optional[Reranker] = None,
        top_n: Optional[int] = 3,
        score_threshold: Optional[float] = None,
        keep_retrieval_score: bool = False,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        batch_size: Optional[int] = None,
        max_length: Optional[int] = None,
        device: Optional[str] = None,
        use_fp16: Optional[bool] = None,
        callback_manager: Optional[CallbackManager] = None,
    ) -> None:
        load_options = {"max_length": max_length, "device": device, "use_fp16": use_fp16}
        if reranker is not None:
            if not isinstance(reranker, Reranker):
                raise TypeError(
                    f"reranker must be a crossrank.Reranker, got {type(reranker).__name__}"
                )
            if model is not None:
                raise ValueError(
                    "pass either model= (to load a cross-encoder) or reranker= (to share a loaded "
                    "crossrank.Reranker), not both"
                )
            given = [name for name in _LOAD_OPTIONS if load_options[name] is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} configure loading a model and cannot be combined with "
                    "reranker=; set them on the Reranker you pass"
                )
        super().__init__(
            model=DEFAULT_MODEL if model is None else os.fspath(model),
            top_n=top_n,
            score_threshold=score_threshold,
            keep_retrieval_score=keep_retrieval_score,
            metadata_mode=metadata_mode,
            batch_size=batch_size,
            max_length=512 if max_length is None else max_length,
            device="auto" if device is None else device,
            use_fp16=use_fp16,
            callback_manager=callback_manager or CallbackManager(),
        )
        if reranker is None:
            reranker = Reranker(
                self.model, device=self.device, use_fp16=self.use_fp16, max_length=self.max_length
            )
        self._reranker = reranker
        # Describe the model actually in use, so to_dict()/from_dict() rebuild an equivalent one.
        self.model = reranker.model_name
        self.device = str(reranker.device)
        self.max_length = reranker.max_length
        self.use_fp16 = reranker.dtype != torch.float32

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    @property
    def reranker(self) -> Reranker:
        """The :class:`crossrank.Reranker` doing the scoring (share it with other wrappers)."""
        return self._reranker

    def _postprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        if query_bundle is None:
            raise ValueError(
                "CrossRankRerank needs the query to rerank for: pass query_bundle=QueryBundle(...) "
                "or query_str='...' to postprocess_nodes"
            )
        query = query_bundle.query_str
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=len(nodes) if self.top_n is None else self.top_n,
                model_name=self.model,
            )
        )
        texts = [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            hits = self._reranker.rank(
                query,
                texts,
                top_k=self.top_n,
                threshold=self.score_threshold,
                batch_size=self.batch_size,
            )
            reranked = [self._rescored(nodes[hit.index], hit.score) for hit in hits]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _rescored(self, item: NodeWithScore, score: float) -> NodeWithScore:
        # A deep copy: later postprocessors may edit the node (text, metadata, exclusion lists)
        # and none of that may reach the caller's node.
        node = item.node.model_copy(deep=True)
        if self.keep_retrieval_score:
            node.metadata["retrieval_score"] = item.score
        return NodeWithScore(node=node, score=score)

    async def apostprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
        query_str: Optional[str] = None,
    ) -> List[NodeWithScore]:
        """Rerank ``nodes`` without blocking the event loop (scoring runs in a worker thread)."""
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
        # torch releases the GIL during the forward pass, so a worker thread lets the event loop
        # serve other requests while the model scores.
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
