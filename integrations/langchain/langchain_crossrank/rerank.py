"""``CrossRankRerank``: a LangChain document compressor backed by a crossrank ``Reranker``."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Optional, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, model_validator

from crossrank import DEFAULT_MODEL, Reranker

# Options that only matter when this compressor loads the model itself.
_LOAD_OPTIONS = ("max_length", "device", "use_fp16")


class CrossRankRerank(BaseDocumentCompressor):
    """Rerank retrieved documents with a cross-encoder, best first, keeping the top ``top_n``.

    Any Hugging Face ``*ForSequenceClassification`` cross-encoder works (``BAAI/bge-reranker-base``,
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``, a local checkpoint directory, ...). The model is
    loaded once, when the compressor is built; pass ``reranker=`` instead of ``model=`` to share
    one loaded ``crossrank.Reranker`` between compressors, threads or a LlamaIndex postprocessor.

    Returned documents are new ``Document`` objects carrying the input's ``page_content``, ``id``
    and a copy of its metadata plus ``metadata["relevance_score"]``, the sigmoid-normalized score
    in (0, 1). The documents passed in, and their metadata, are never modified.

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_crossrank import CrossRankRerank

            compressor = CrossRankRerank(model="BAAI/bge-reranker-base", top_n=5)
            retriever = ContextualCompressionRetriever(
                base_compressor=compressor,
                base_retriever=store.as_retriever(search_kwargs={"k": 50}),
            )
            docs = retriever.invoke("What do giant pandas eat?")
            docs[0].metadata["relevance_score"]  # 0.99...
    """

    model: Optional[str] = Field(
        default=None,
        description=f"Hub id or local checkpoint directory of the cross-encoder "
        f"(default {DEFAULT_MODEL!r}). Give either this or ``reranker``.",
    )
    reranker: Optional[Reranker] = Field(
        default=None,
        exclude=True,
        description="An already loaded crossrank.Reranker to share instead of loading ``model``. "
        "After construction it holds the Reranker in use; it is never serialized.",
    )
    top_n: Optional[int] = Field(
        default=3, ge=1, description="Documents to return; None keeps every document."
    )
    score_threshold: Optional[float] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop documents whose normalized score is below this (applied before top_n); "
        "None keeps them all.",
    )
    batch_size: Optional[int] = Field(
        default=None,
        ge=1,
        description="Pairs per batch for the longest pairs; None uses the Reranker's own (32).",
    )
    max_length: int = Field(default=512, ge=16, description="Tokens per (query, document) pair.")
    device: str = Field(
        default="auto", description='"auto" (CUDA, then MPS, then CPU), "cpu", "cuda[:N]", "mps".'
    )
    use_fp16: Optional[bool] = Field(
        default=None,
        description="Half precision; None means yes on CUDA/MPS and no on CPU.",
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _model_or_reranker(cls, values: Any) -> Any:
        if not isinstance(values, dict) or values.get("reranker") is None:
            return values
        if values.get("model") is not None:
            raise ValueError(
                "pass either model= (to load a cross-encoder) or reranker= (to share a loaded "
                "crossrank.Reranker), not both"
            )
        given = [name for name in _LOAD_OPTIONS if name in values]
        if given:
            raise ValueError(
                f"{', '.join(given)} configure loading a model and cannot be combined with "
                "reranker=; set them on the Reranker you pass"
            )
        return values

    def model_post_init(self, context: Any) -> None:
        if self.reranker is None:
            self.model = self.model or DEFAULT_MODEL
            self.reranker = Reranker(
                self.model, device=self.device, use_fp16=self.use_fp16, max_length=self.max_length
            )
        else:
            # Describe the shared model, so model_dump() rebuilds an equivalent compressor.
            self.model = self.reranker.model_name
            self.device = str(self.reranker.device)
            self.max_length = self.reranker.max_length

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Optional[Callbacks] = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query``: threshold first, then ``top_n``, best first.

        Args:
            documents: the retrieved documents; empty ``page_content`` is scored like any text.
            query: the search text; an empty query raises ``ValueError``.
            callbacks: accepted for the LangChain interface; not used.

        Returns:
            New documents with ``metadata["relevance_score"]``; ``[]`` for no documents.

        >>> compressor.compress_documents(docs, "What do giant pandas eat?")  # doctest: +SKIP
        [Document(id='2', metadata={'source': 'wiki', 'relevance_score': 0.98}, page_content=...)]
        """
        hits = self.reranker.rank(
            query,
            [doc.page_content for doc in documents],
            top_k=self.top_n,
            threshold=self.score_threshold,
            batch_size=self.batch_size,
        )
        return [_with_score(documents[hit.index], hit.score) for hit in hits]

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Optional[Callbacks] = None,
    ) -> Sequence[Document]:
        """Like ``compress_documents``, scoring in a worker thread so the event loop keeps running.

        >>> await compressor.acompress_documents(docs, "What do giant pandas eat?")  # doctest: +SKIP
        """
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


def _with_score(document: Document, score: float) -> Document:
    # A deep copy: nested metadata values (lists, dicts) must not be shared with the caller's.
    metadata = copy.deepcopy(document.metadata)
    metadata["relevance_score"] = score
    return document.model_copy(update={"metadata": metadata})
