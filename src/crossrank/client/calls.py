"""One checked rerank request to a crossrank server: what is sent to which route, how the answer
is read. No HTTP here (that is :mod:`crossrank.client.remote`).

Every argument of :meth:`crossrank.scorer.Scorer.rank` is checked with the core's own checks, so
a remote call rejects what ``Reranker.rank`` rejects, with the same words, before anything is
sent. Then one of two routes answers:

- the Cohere-v1-shaped ``POST /v1/rerank`` for the default ``normalize=True`` without fusion:
  the server selects (threshold, ``min_keep``, ``top_k``) on its sigmoid (or calibrated) scores;
- the TEI-shaped ``POST /rerank`` with ``raw_scores`` for fusion or ``normalize=False``: the
  server gives the raw logit of every document and they are fused and selected here with the
  same code as ``Reranker.rank`` (:func:`crossrank.fusion.rank_fused`,
  :func:`crossrank.results.select`), so local and remote give the same order and scores. Its
  ``rerank_score`` is the sigmoid of the logit; a server's ``--calibration`` does not reach it.

Example:
    >>> call = RerankCall.create("what is panda?", ["hi", "a bear"], top_k=1)
    >>> call.route, call.body("m")
    ('/v1/rerank', {'query': 'what is panda?', 'documents': ['hi', 'a bear'], 'return_documents': False, 'model': 'm', 'top_n': 1})
    >>> call.results({"results": [{"index": 1, "relevance_score": 0.9}]})[0].text
    'a bear'
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..fusion import rank_fused
from ..inputs import (
    check_batch_size,
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
from ..scorer import Scorer

COHERE_ROUTE = "/v1/rerank"  # sigmoid (or the server's calibrated) scores, selected there
RAW_ROUTE = "/rerank"  # TEI's route: raw logits of all texts, in any order, with their index
_RANK = inspect.signature(Scorer.rank)  # the one list of rank's arguments and defaults


@dataclass(frozen=True)
class RerankCall:
    """One checked ``rank`` request: its :attr:`route`, :meth:`body` and :meth:`results`."""

    query: str
    documents: List[str]
    top_k: Optional[int]
    threshold: Optional[float]
    normalize: bool
    min_keep: int
    first_stage: Optional[List[float]]  # None: no fusion
    fusion: str
    weight: float

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> RerankCall:
        """From ``Scorer.rank``'s arguments (a ``TypeError`` for any other), each one checked.

        ``batch_size`` is checked and then left to the server, which batches by its own budget.
        """
        bound = _RANK.bind(None, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        query, documents = check_query(a["query"]), check_documents(a["documents"])
        first_stage = a["first_stage_scores"]
        if first_stage is not None:
            first_stage = check_first_stage_scores(first_stage, len(documents))
        fusion, weight = check_fusion(a["fusion"]), check_fusion_weight(a["fusion_weight"])
        top_k, threshold = check_top_k(a["top_k"]), check_threshold(a["threshold"])
        min_keep, normalize = check_min_keep(a["min_keep"]), check_normalize(a["normalize"])
        check_batch_size(a["batch_size"])
        return cls(
            query, documents, top_k, threshold, normalize, min_keep, first_stage, fusion, weight
        )

    @property
    def route(self) -> str:
        """Where the request goes: the raw-logit route whenever the selection happens here."""
        raw = self.first_stage is not None or not self.normalize
        return RAW_ROUTE if raw else COHERE_ROUTE

    def body(self, model: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The JSON body for :attr:`route`; None when there is nothing to ask."""
        if not self.documents or self.top_k == 0:
            return None
        if self.route == RAW_ROUTE:
            body: Dict[str, Any] = {"query": self.query, "texts": self.documents}
            body["raw_scores"] = True
        else:
            body = {"query": self.query, "documents": self.documents, "return_documents": False}
        optional = {"model": model}
        if self.route == COHERE_ROUTE:
            optional.update(top_n=self.top_k, score_threshold=self.threshold)
            optional["min_keep"] = self.min_keep or None  # only sent when it asks for something
        body.update({key: value for key, value in optional.items() if value is not None})
        return body

    def results(self, payload: Any) -> List[RankedDocument]:
        """The ranking from the server's answer; ``ValueError``/``TypeError``/``KeyError``/
        ``IndexError`` for an answer of another shape."""
        if self.route == COHERE_ROUTE:
            return [self._hit(item) for item in payload["results"]]
        logits: List[Optional[float]] = [None] * len(self.documents)
        for item in payload:
            index, score = _position(item["index"]), item["score"]
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
        selection = (self.top_k, self.threshold, self.min_keep)
        return rank_fused(
            self.documents, raw, scores, self.first_stage, self.fusion, self.weight, *selection
        )

    def _hit(self, item: Any) -> RankedDocument:
        index = _position(item["index"])
        return RankedDocument(
            index=index, score=float(item["relevance_score"]), text=self.documents[index]
        )


def _position(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index {index!r} is not a document position")
    return index
