"""``CrossRankRerank``: a LlamaIndex node postprocessor backed by crossrank, local or remote."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Union

from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from crossrank.inputs import check_score
from crossrank.integration import as_items, copy_model, options_model, rank_options
from crossrank.results import RankedDocument
from crossrank.scorer import Scorer
from crossrank.sources import open_scorer, wrapper_fields

dispatcher = get_dispatcher(__name__)
_Fields = options_model(
    "CrossRankRerankFields", BaseNodePostprocessor, ("source", "rank", "remote"), "nodes"
)


class CrossRankRerank(_Fields):
    """Rerank retrieved nodes with a cross-encoder, best first, keeping the top ``top_n``.

    Each node's text (``node.get_content(metadata_mode=...)``) is scored with the query. Scores
    come from exactly one of ``model`` (loaded here, with its load options and any
    ``crossrank.Reranker`` option in ``reranker_kwargs``), ``reranker`` (a built scorer to
    share, e.g. with the LangChain compressor) or ``base_url`` (a running ``crossrank serve``).

    Selection: ``score_threshold`` (on the sigmoid score) first, never leaving fewer than
    ``min_keep``, then ``top_n`` (``0``: none, ``None``: all). The result holds *new*
    ``NodeWithScore`` objects (deep copies; what cannot be copied is shared): the caller's nodes
    are never modified. With ``fusion="minmax"`` or ``"rrf"`` each node's retriever score
    (``NodeWithScore.score``) is fused with the reranker's as
    ``Reranker.rank(first_stage_scores=...)`` does; ``keep_retrieval_score=True`` keeps the
    retriever's in ``metadata["retrieval_score"]``.

    Example:
        .. code-block:: python

            post = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5, score_threshold=0.3)
            # or CrossRankRerank(base_url="http://127.0.0.1:8080", api_key="...", top_n=5)
            engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[post])
            engine.query("What do giant pandas eat?").source_nodes[0].score  # 0.99...
    """

    keep_retrieval_score: bool = Field(
        default=False,
        description="Store the retriever's score in the new node's metadata[\"retrieval_score\"].",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata goes into each node's scored text."
    )

    model_config = ConfigDict(validate_assignment=True)

    _scorer: Scorer = PrivateAttr()
    _reranker: Optional[Scorer] = PrivateAttr(default=None)

    def __init__(
        self,
        model: Union[str, os.PathLike, None] = None,
        *,
        reranker: Optional[Scorer] = None,
        **fields: Any,
    ) -> None:
        if fields.get("callback_manager") is None:
            fields["callback_manager"] = CallbackManager()
        # Fields first, so a bad top_n fails before a model is loaded.
        super().__init__(**wrapper_fields({"model": model, **fields}))
        opened = open_scorer(self, reranker)
        self._scorer, self._reranker = opened.scorer, opened.reranker
        # Frozen fields are written directly: they report the model in use, they do not choose it.
        self.__dict__.update(opened.fields)

    @classmethod
    def class_name(cls) -> str:
        return "CrossRankRerank"

    @property
    def reranker(self) -> Optional[Scorer]:
        """The scorer shared or loaded here (None with ``base_url``)."""
        return self._reranker

    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        nodes, query = _as_nodes(nodes), _require_query(query_bundle)
        texts, options = self._request(nodes)
        with self._reranking(nodes, query) as reranked:
            reranked.extend(
                self._rescored(nodes, self._scorer.rank(query.query_str, texts, **options))
            )
        return reranked

    async def apostprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
        query_str: Optional[str] = None,
    ) -> List[NodeWithScore]:
        """Rerank ``nodes`` without blocking the event loop (``Scorer.arank``)."""
        # Defined here as well: llama-index-core before 0.12.31 has no apostprocess_nodes.
        if query_str is not None and query_bundle is not None:
            raise ValueError("pass either query_bundle or query_str, not both")
        if query_str is not None:
            query_bundle = QueryBundle(query_str)
        return await self._apostprocess_nodes(nodes, query_bundle)

    async def _apostprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        nodes, query = _as_nodes(nodes), _require_query(query_bundle)
        texts, options = self._request(nodes)
        with self._reranking(nodes, query) as reranked:
            hits = await self._scorer.arank(query.query_str, texts, **options)
            reranked.extend(self._rescored(nodes, hits))
        return reranked

    def _request(self, nodes: List[NodeWithScore]) -> tuple[List[str], dict]:
        texts = [item.node.get_content(metadata_mode=self.metadata_mode) for item in nodes]
        return texts, rank_options(self, lambda i: self._first_stage(nodes[i], i), len(nodes))

    def _first_stage(self, item: NodeWithScore, i: int) -> float:
        if item.score is None:
            raise ValueError(
                f"nodes[{i}].score is None: fusion={self.fusion!r} needs each node's retriever "
                "score; rerank nodes straight from a retriever, or set fusion=None"
            )
        return check_score(item.score, f"nodes[{i}].score")

    @contextmanager
    def _reranking(self, nodes: List[NodeWithScore], query: QueryBundle) -> Iterator[list]:
        """Emit the start events, let the caller fill the yielded list, emit the end events."""
        model_name = self.model or self.base_url or ""
        top_n = len(nodes) if self.top_n is None else self.top_n
        dispatcher.event(
            ReRankStartEvent(query=query, nodes=nodes, top_n=top_n, model_name=model_name)
        )
        reranked: List[NodeWithScore] = []
        payload = {EventPayload.NODES: nodes, EventPayload.MODEL_NAME: model_name}
        payload.update({EventPayload.QUERY_STR: query.query_str, EventPayload.TOP_K: self.top_n})
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            yield reranked
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))

    def _rescored(self, nodes: List[NodeWithScore], hits: List[RankedDocument]) -> list:
        reranked = []
        for hit in hits:
            item = nodes[hit.index]
            node = copy_model(item.node)
            if self.keep_retrieval_score:
                node.metadata["retrieval_score"] = item.score
            reranked.append(NodeWithScore(node=node, score=hit.score))
        return reranked


def _as_nodes(nodes: Any) -> List[NodeWithScore]:
    # Read before any event: ReRankStartEvent would otherwise consume a generator.
    hint = lambda item: " (wrap it: NodeWithScore(node=node))" if isinstance(item, BaseNode) else ""  # noqa: E731
    if isinstance(nodes, BaseNode):
        raise TypeError(f"nodes must be an iterable of NodeWithScore, got {type(nodes).__name__}")
    return as_items(nodes, "nodes", NodeWithScore, "NodeWithScore", "NodeWithScore", hint)


def _require_query(query_bundle: Optional[QueryBundle]) -> QueryBundle:
    if query_bundle is None:
        raise ValueError(
            "CrossRankRerank needs the query to rerank for: pass query_bundle=QueryBundle(...) "
            "or query_str='...' to postprocess_nodes"
        )
    return query_bundle
