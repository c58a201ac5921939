"""``CrossRankRerank``: a LangChain document compressor backed by crossrank, local or remote."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Iterable, List, Literal, Optional, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field, SecretStr, model_validator

from crossrank import RankedDocument, Reranker
from crossrank.inputs import check_score
from crossrank.sharing import copy_shareable, rank_options

from ._source import ModelSource


class CrossRankRerank(ModelSource, BaseDocumentCompressor):
    """Rerank retrieved documents with a cross-encoder, best first, keeping the top ``top_n``.

    Scores come from exactly one of: ``model=`` (a hub id or local checkpoint loaded here, with
    ``max_length``/``device``/``use_fp16``/``dtype`` and any other ``crossrank.Reranker`` option in
    ``reranker_kwargs``), ``reranker=`` (a loaded ``crossrank.Reranker`` to share), or
    ``base_url=`` (a running ``crossrank serve``, with ``api_key`` and ``timeout``; nothing is
    loaded here). The three give the same documents and scores for the same model.

    Returned documents are new ``Document`` objects carrying the input's ``page_content``, ``id``
    and a copy of its metadata plus ``metadata["relevance_score"]``, the sigmoid score in (0, 1).
    The documents passed in and their metadata are never modified; metadata values that cannot be
    deep-copied (a lock, an open file) are shared, not copied.

    Selection: ``score_threshold`` first (never leaving fewer than ``min_keep``), then ``top_n``;
    ``top_n=0`` returns no documents and ``None`` keeps all, as ``Reranker.rank(top_k=...)``.
    Fields are checked on assignment too.

    Fusion: with ``fusion="minmax"`` or ``"rrf"``, each document's retriever score (its
    ``metadata[score_key]``, a number; a document without it is an error naming the key) is fused
    with the reranker's as ``Reranker.rank(first_stage_scores=...)`` does, ``fusion_weight`` being
    the retriever's weight. ``relevance_score`` is then the fused score in [0, 1] (the threshold
    applies to it) and ``metadata["rerank_score"]`` the reranker's own. With ``base_url`` the
    server's raw scores are fused here, with the same result.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_crossrank import CrossRankRerank

            compressor = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5)
            # or CrossRankRerank(base_url="http://127.0.0.1:8080", api_key="...", top_n=5)
            retriever = ContextualCompressionRetriever(
                base_compressor=compressor,
                base_retriever=store.as_retriever(search_kwargs={"k": 50}),
            )
            docs = retriever.invoke("What do giant pandas eat?")
            docs[0].metadata["relevance_score"]  # 0.99...

            # fused with the retriever's score, kept by the retriever in metadata["score"]
            fused = CrossRankRerank(model="BAAI/bge-reranker-base", fusion="minmax")
    """

    top_n: Optional[int] = Field(
        default=3, ge=0, description="Documents to return (0: none); None keeps every document."
    )
    score_threshold: Optional[float] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop documents whose normalized score is below this (applied before top_n); "
        "None keeps them all.",
    )
    min_keep: int = Field(
        default=0,
        ge=0,
        description="Keep at least this many documents (the best) whatever score_threshold "
        "drops; top_n still caps. 0 lets the threshold drop every document.",
    )
    batch_size: Optional[int] = Field(
        default=None,
        ge=1,
        description="Pairs per batch for the longest pairs; None uses the Reranker's own (32). "
        "Not used with base_url (the server batches).",
    )
    fusion: Optional[Literal["minmax", "rrf"]] = Field(
        default=None,
        description='Fuse with the retriever\'s score: "minmax" (weighted min-max) or "rrf" '
        "(reciprocal-rank fusion); None reranks on the reranker's score alone.",
    )
    fusion_weight: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="With fusion: the weight of the retriever's score (0: the reranker's order, "
        "1: the retriever's).",
    )
    score_key: str = Field(
        default="score",
        description="With fusion: the metadata key holding each document's retriever score.",
    )
    base_url: Optional[str] = Field(
        default=None,
        frozen=True,
        description="URL of a crossrank server (`crossrank serve`) to score on instead of "
        "loading a model: its POST {base_url}/v1/rerank is called.",
    )
    api_key: Optional[SecretStr] = Field(
        default=None,
        frozen=True,
        exclude=True,
        description="The server's API key (sent as a Bearer token); default: the "
        "CROSSRANK_API_KEY environment variable. Never serialized.",
    )
    timeout: float = Field(
        default=60.0, gt=0, frozen=True, description="Seconds to wait for the server's answer."
    )

    @model_validator(mode="after")
    def _batch_size_is_local(self) -> Any:
        if self.base_url is not None and self.batch_size is not None:
            raise ValueError(
                "batch_size is chosen by the server with base_url= (crossrank serve "
                "--max-batch-tokens); leave it None"
            )
        return self

    def _remote_options(self) -> Dict[str, Any]:
        key = None if self.api_key is None else self.api_key.get_secret_value()
        return {"base_url": self.base_url, "api_key": key, "timeout": self.timeout}

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Optional[Callbacks] = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``: threshold first, then ``top_n``, best first.

        Args:
            documents: any iterable of ``Document`` (a list, a generator, ...); empty
                ``page_content`` is scored like any text.
            query: the search text; an empty query raises ``ValueError``.
            callbacks: accepted for the LangChain interface; not used.

        Returns:
            New documents with ``metadata["relevance_score"]``; ``[]`` for no documents.

        >>> compressor.compress_documents(docs, "What do giant pandas eat?")  # doctest: +SKIP
        [Document(id='2', metadata={'source': 'wiki', 'relevance_score': 0.98}, page_content=...)]
        """
        docs = _as_documents(documents)
        texts = [doc.page_content for doc in docs]
        options = self._options(docs)
        if isinstance(self._scorer, Reranker):
            hits = self._scorer.rank(query, texts, batch_size=self.batch_size, **options)
        else:
            hits = self._scorer.rank(query, texts, **options)
        return _rescored(docs, hits)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Optional[Callbacks] = None,
    ) -> Sequence[Document]:
        """Like ``compress_documents`` without blocking the event loop.

        A local model scores in a worker thread (torch releases the GIL); with ``base_url`` the
        request is awaited on an ``httpx.AsyncClient``.

        >>> await compressor.acompress_documents(docs, "What do giant pandas eat?")  # doctest: +SKIP
        """
        docs = _as_documents(documents)  # materialised here: a generator must not cross threads
        if isinstance(self._scorer, Reranker):
            return await asyncio.to_thread(self.compress_documents, docs, query, callbacks)
        options = self._options(docs)
        hits = await self._scorer.arank(query, [doc.page_content for doc in docs], **options)
        return _rescored(docs, hits)

    def _options(self, docs: List[Document]) -> Dict[str, Any]:
        """``rank``'s selection options, and the fusion options with the retriever's scores."""
        return rank_options(self, lambda i: self._first_stage(docs[i], i), len(docs))

    def _first_stage(self, doc: Document, i: int) -> float:
        key = self.score_key
        if key not in doc.metadata:
            raise ValueError(
                f"documents[{i}].metadata has no {key!r}: fusion={self.fusion!r} needs each "
                f"document's retriever score there; set score_key= to the key your retriever "
                "uses, or fusion=None"
            )
        return check_score(doc.metadata[key], f"documents[{i}].metadata[{key!r}]")


def _as_documents(documents: Iterable[Document]) -> List[Document]:
    # Strings are iterable too, and a dict iterates its keys: refuse both by name.
    if documents is None or isinstance(documents, (str, bytes, dict, Document)):
        raise TypeError(
            f"documents must be an iterable of langchain Document objects, got {type(documents).__name__}"
        )
    try:
        docs = list(documents)
    except TypeError:
        raise TypeError(
            f"documents must be an iterable of langchain Document objects, got {type(documents).__name__}"
        ) from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(
                f"documents[{i}] is {type(doc).__name__}, expected a langchain Document; wrap "
                "plain text as Document(page_content=text)"
            )
    return docs


def _rescored(documents: List[Document], hits: List[RankedDocument]) -> List[Document]:
    return [_with_score(documents[hit.index], hit) for hit in hits]


def _with_score(document: Document, hit: RankedDocument) -> Document:
    # A deep copy: nested metadata values (lists, dicts) must not be shared with the caller's;
    # values that cannot be copied (locks, files) are shared rather than failing the call.
    metadata = copy_shareable(document.metadata)
    metadata["relevance_score"] = hit.score
    if hit.rerank_score is not None:  # fused: the reranker's own score beside the fused one
        metadata["rerank_score"] = hit.rerank_score
    return document.model_copy(update={"metadata": metadata})
