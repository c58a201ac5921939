"""``CrossRankCrossEncoder``: crossrank behind LangChain's ``BaseCrossEncoder`` interface."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from langchain_core.cross_encoders import BaseCrossEncoder
from pydantic import Field

from crossrank.integration import options_model

from ._source import ModelSource

_Fields = options_model("CrossRankCrossEncoderFields", ModelSource, ("batch_size", "remote"))


class CrossRankCrossEncoder(_Fields, BaseCrossEncoder):
    """Score (query, passage) pairs with crossrank for LangChain's ``CrossEncoderReranker``.

    A drop-in for ``HuggingFaceCrossEncoder``: ``score`` returns ``Reranker.compute_score`` of the
    pairs, raw logits (FlagReranker-compatible) unless ``normalize=True`` (sigmoid, in (0, 1)).
    Scores come from ``model=``, ``reranker=`` or ``base_url=``, as for ``CrossRankRerank``.

    Example:
        .. code-block:: python

            encoder = CrossRankCrossEncoder(model="BAAI/bge-reranker-base")
            compressor = CrossEncoderReranker(model=encoder, top_n=3)  # langchain_classic
            encoder.score([("what is panda?", "The giant panda is a bear.")])  # [5.26]
    """

    normalize: bool = Field(default=False, description="Sigmoid scores in (0, 1), not logits.")

    def score(self, text_pairs: Sequence[Tuple[str, str]]) -> List[float]:
        """Scores of ``text_pairs`` (``(query, passage)`` tuples or lists), in input order."""
        if text_pairs is None or isinstance(text_pairs, (str, bytes, dict)):
            raise TypeError(
                f"text_pairs must be a list of (query, passage) pairs, got {type(text_pairs).__name__}"
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
