"""``CrossRankRerank``: a LangChain document compressor backed by crossrank, local or remote."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field

from crossrank.inputs import check_score
from crossrank.integration import as_items, copy_model, options_model, rank_options
from crossrank.results import RankedDocument

from ._source import ModelSource

_Fields = options_model("CrossRankRerankFields", ModelSource, ("rank", "remote"))


class CrossRankRerank(_Fields, BaseDocumentCompressor):
    """Rerank retrieved documents with a cross-encoder, best first, keeping the top ``top_n``.

    Scores come from exactly one of ``model=`` (loaded here, with its load options and any
    ``crossrank.Reranker`` option in ``reranker_kwargs``), ``reranker=`` (a built scorer to
    share) or ``base_url=`` (a running ``crossrank serve``; nothing is loaded here): the same
    documents and scores for the same model.

    Returned documents are new ``Document`` objects (deep copies; what cannot be copied, such as
    a lock in the metadata, is shared) with ``metadata["relevance_score"]``, the sigmoid score in
    (0, 1); the documents passed in are never modified. Selection: ``score_threshold`` first
    (never leaving fewer than ``min_keep``), then ``top_n`` (``0``: none, ``None``: all).

    Fusion: with ``fusion="minmax"`` or ``"rrf"``, each document's retriever score (its
    ``metadata[score_key]``) is fused with the reranker's as
    ``Reranker.rank(first_stage_scores=...)`` does; ``relevance_score`` is then the fused score
    and ``metadata["rerank_score"]`` the reranker's own.

    Example:
        .. code-block:: python

            compressor = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5)
            # or CrossRankRerank(base_url="http://127.0.0.1:8080", api_key="...", top_n=5)
            retriever = ContextualCompressionRetriever(base_compressor=compressor,  # classic
                                                       base_retriever=store.as_retriever())
            retriever.invoke("What do giant pandas eat?")[0].metadata["relevance_score"]  # 0.99
    """

    score_key: str = Field(
        default="score",
        description="With fusion: the metadata key holding each document's retriever score.",
    )

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Optional[Callbacks] = None
    ) -> Sequence[Document]:
        """Rerank ``documents`` (any iterable) for ``query``: new documents, best first.

        >>> compressor.compress_documents(docs, "What do giant pandas eat?")  # doctest: +SKIP
        [Document(id='2', metadata={'source': 'wiki', 'relevance_score': 0.98}, page_content=...)]
        """
        docs, texts, options = self._request(documents)
        return _rescored(docs, self._scorer.rank(query, texts, **options))

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Optional[Callbacks] = None
    ) -> Sequence[Document]:
        """Like ``compress_documents``, awaited without blocking the event loop."""
        docs, texts, options = self._request(documents)
        return _rescored(docs, await self._scorer.arank(query, texts, **options))

    def _request(self, documents: Any) -> tuple[List[Document], List[str], Dict[str, Any]]:
        wrap = "a langchain Document; wrap plain text as Document(page_content=text)"
        docs = as_items(documents, "documents", Document, "langchain Document objects", wrap)
        first_stage = lambda i: self._first_stage(docs[i], i)  # noqa: E731
        return docs, [doc.page_content for doc in docs], rank_options(self, first_stage, len(docs))

    def _first_stage(self, doc: Document, i: int) -> float:
        key = self.score_key
        if key not in doc.metadata:
            raise ValueError(
                f"documents[{i}].metadata has no {key!r}: fusion={self.fusion!r} needs each "
                f"document's retriever score there; set score_key= to the key your retriever "
                "uses, or fusion=None"
            )
        return check_score(doc.metadata[key], f"documents[{i}].metadata[{key!r}]")


def _rescored(documents: List[Document], hits: List[RankedDocument]) -> List[Document]:
    reranked = []
    for hit in hits:
        document = copy_model(documents[hit.index])
        document.metadata["relevance_score"] = hit.score
        if hit.rerank_score is not None:  # fused: the reranker's own score beside the fused one
            document.metadata["rerank_score"] = hit.rerank_score
        reranked.append(document)
    return reranked
