"""Selection on the server's raw logits for :class:`~crossrank.client.remote.RemoteReranker`.

Used when the Cohere route's sigmoid scores are not what was asked: fusion with a first stage,
or ``normalize=False``. The server is asked for the raw logits of every document (its TEI route,
``POST /rerank`` with ``raw_scores``), and they are fused and selected here with the same code as
``Reranker.rank`` (:func:`crossrank.fusion.rank_fused`, :func:`crossrank.results.select`): local
and remote give the same order and scores. ``rerank_score`` is the sigmoid of the logit; a
server's ``--calibration`` does not reach it (the fused score does not depend on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..fusion import rank_fused
from ..inputs import (
    check_documents,
    check_first_stage_scores,
    check_fusion,
    check_fusion_weight,
    check_min_keep,
    check_normalize,
    check_query,
    check_threshold,
    check_top_k,
)
from ..results import RankedDocument, select, sigmoid

ROUTE = "/rerank"  # TEI's route: raw logits of all texts, in any order, with their index


@dataclass(frozen=True)
class FusedCall:
    """One checked request for raw logits: what to send (:meth:`body`) and how to read the answer.

    ``first_stage`` None: no fusion, the logits (or their sigmoid) are only selected.
    """

    query: str
    documents: List[str]
    first_stage: Optional[List[float]]
    fusion: str
    weight: float
    top_k: Optional[int]
    threshold: Optional[float]
    min_keep: int
    normalize: bool = True

    @classmethod
    def create(
        cls,
        query,
        documents,
        first_stage,
        fusion,
        weight,
        top_k,
        threshold,
        min_keep,
        normalize=True,
    ) -> FusedCall:
        """Every argument checked with the core's checks, before anything is sent."""
        query, documents = check_query(query), check_documents(documents)
        if first_stage is not None:
            first_stage = check_first_stage_scores(first_stage, len(documents))
        fusion, weight = check_fusion(fusion), check_fusion_weight(weight)
        top_k, threshold = check_top_k(top_k), check_threshold(threshold)
        min_keep, normalize = check_min_keep(min_keep), check_normalize(normalize)
        return cls(
            query, documents, first_stage, fusion, weight, top_k, threshold, min_keep, normalize
        )

    def body(self, model: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The request body for :data:`ROUTE`; None when there is nothing to ask."""
        if not self.documents or self.top_k == 0:
            return None
        body: Dict[str, Any] = {"query": self.query, "texts": self.documents, "raw_scores": True}
        if model is not None:
            body["model"] = model
        return body

    def results(self, payload: Any) -> List[RankedDocument]:
        """The (fused) ranking from the server's answer; ``ValueError``/``TypeError``/``KeyError``
        for an answer that is not one finite logit per document."""
        logits: List[Optional[float]] = [None] * len(self.documents)
        for item in payload:
            index, score = item["index"], item["score"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ValueError(f"index {index!r} is not a document position")
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise TypeError(f"score {score!r} is not a number")
            if logits[index] is not None or not math.isfinite(score):
                raise ValueError(f"document {index} is scored twice or not finitely")
            logits[index] = float(score)
        if any(logit is None for logit in logits):
            raise ValueError("not every document was scored")
        raw: List[float] = logits  # type: ignore[assignment]
        scores = [sigmoid(x) for x in raw] if self.normalize else raw
        if self.first_stage is None:
            return select(scores, self.documents, self.top_k, self.threshold, self.min_keep, raw)
        return rank_fused(
            self.documents,
            raw,
            scores,
            self.first_stage,
            self.fusion,
            self.weight,
            self.top_k,
            self.threshold,
            self.min_keep,
        )
