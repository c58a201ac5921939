"""``CrossRankCrossEncoder``: crossrank behind LangChain's ``BaseCrossEncoder`` interface."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from langchain_core.cross_encoders import BaseCrossEncoder
from pydantic import Field

from ._source import ModelSource


class CrossRankCrossEncoder(ModelSource, BaseCrossEncoder):
    """Score (query, passage) pairs with crossrank for LangChain's ``CrossEncoderReranker``.

    A drop-in for ``HuggingFaceCrossEncoder``: users of ``CrossEncoderReranker(model=..., top_n=...)``
    switch by changing the model object. ``score`` returns ``Reranker.compute_score`` of the
    pairs: raw logits (FlagReranker-compatible) unless ``normalize=True`` (sigmoid, in (0, 1));
    either orders documents the same. Give ``model=`` (loaded here, with the same load options
    and ``reranker_kwargs`` as ``CrossRankRerank``) or ``reranker=`` (a loaded Reranker to share).

    Example:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever
            from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
            from langchain_crossrank import CrossRankCrossEncoder

            encoder = CrossRankCrossEncoder(model="BAAI/bge-reranker-base")
            compressor = CrossEncoderReranker(model=encoder, top_n=3)
            retriever = ContextualCompressionRetriever(
                base_compressor=compressor, base_retriever=store.as_retriever()
            )
            encoder.score([("what is panda?", "The giant panda is a bear.")])  # [5.26]
    """

    normalize: bool = Field(
        default=False, description="Sigmoid scores in (0, 1) instead of raw logits."
    )
    batch_size: Optional[int] = Field(
        default=None, ge=1, description="Pairs per batch; None uses the Reranker's own (32)."
    )

    def score(self, text_pairs: Sequence[Tuple[str, str]]) -> List[float]:
        """Scores of ``text_pairs`` (``(query, passage)`` tuples or lists), in input order.

        >>> encoder.score([("q", "p1"), ("q", "p2")])  # doctest: +SKIP
        [-8.1, 5.3]
        """
        if text_pairs is None or isinstance(text_pairs, (str, bytes, dict)):
            raise TypeError(
                "text_pairs must be a list of (query, passage) pairs, "
                f"got {type(text_pairs).__name__}"
            )
        pairs = []
        for i, pair in enumerate(text_pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(
                    f"text_pairs[{i}] must be a (query, passage) pair, got {pair!r:.80}"
                )
            pairs.append([pair[0], pair[1]])
        if not pairs:
            return []
        return self._scorer.compute_score(
            pairs, normalize=self.normalize, batch_size=self.batch_size
        )
