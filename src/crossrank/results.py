"""Ranked results and the one selection every edge applies to raw scores.

Scores leave the pipeline once, in input order, as raw logits. Each edge (``Reranker.rank`` and
``rank_many``, the service, Ray, the remote client) turns them into results with one
:class:`Selection`: normalize (sigmoid or a calibration), fuse with first-stage scores when given,
then threshold, ``min_keep`` and ``top_k``; ties by score, then logit, then input order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .fusion import fuse_scores
from .inputs import (
    check_fusion,
    check_fusion_weight,
    check_min_keep,
    check_normalize,
    check_threshold,
    check_top_k,
)


@dataclass(frozen=True)
class RankedDocument:
    """One reranked document: its position in the input, its score, its text and raw logit.

    ``score`` is what results are ordered and thresholded by: the reranker's score (in (0, 1) by
    default; the raw logit with ``normalize=False``), or, when ``rank`` was given
    ``first_stage_scores``, the fused score in [0, 1] (:mod:`crossrank.fusion`). ``logit`` is
    always the raw model score. Only fused results set the last two fields:
    ``rerank_score`` (the score ``rank`` would have returned without fusion) and
    ``first_stage_score`` (the retriever's score as passed in); both are None otherwise.
    """

    index: int
    score: float
    text: str
    logit: Optional[float] = None
    rerank_score: Optional[float] = None
    first_stage_score: Optional[float] = None


def sigmoid(x: float) -> float:
    """The logistic function in float64, without overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def activate(logits: Sequence[float], calibration=None) -> List[float]:
    """Normalized scores of raw ``logits``: a calibration's probabilities, else sigmoids.

    >>> [round(p, 3) for p in activate([0.0, 2.0])]
    [0.5, 0.881]
    """
    if calibration is not None:
        return [float(p) for p in calibration.probabilities(list(logits))]
    return [sigmoid(s) for s in logits]


def select(
    scores: Sequence[float],
    texts: Sequence[str],
    top_k: Optional[int] = None,
    threshold: Optional[float] = None,
    min_keep: int = 0,
    logits: Optional[Sequence[float]] = None,
) -> List[RankedDocument]:
    """Order documents best first, drop those scoring below ``threshold``, then keep ``top_k``.

    Ties on the score are broken by the raw logit (scores that saturate near 1.0 still follow the
    model), then by input order. ``min_keep`` documents (the best) survive any threshold;
    ``top_k`` still caps the result. :meth:`Selection.apply` calls this once per query.

    >>> [d.index for d in select([0.2, 0.9, 0.2], ["a", "b", "c"], top_k=2)]
    [1, 0]
    >>> [d.index for d in select([0.2, 0.3], ["a", "b"], threshold=0.5, min_keep=1)]
    [1]
    """
    top_k = check_top_k(top_k)
    threshold = check_threshold(threshold)
    min_keep = check_min_keep(min_keep)
    if logits is None:
        logits = scores
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], -logits[i], i))
    ranked = [
        RankedDocument(index=i, score=float(scores[i]), text=texts[i], logit=float(logits[i]))
        for i in order
    ]
    if threshold is not None:
        kept = [doc for doc in ranked if doc.score >= threshold]
        ranked = kept if len(kept) >= min_keep else ranked[:min_keep]
    if top_k is not None:
        ranked = ranked[:top_k]
    return ranked


@dataclass(frozen=True)
class Selection:
    """What one request asks of its raw scores; :meth:`apply` turns them into ranked results.

    Every option is checked when the selection is built (before anything is scored):
    ``normalize`` (sigmoid, or the calibration passed to :meth:`apply`), ``threshold`` on the score
    as returned, ``min_keep`` (a threshold never leaves fewer), ``top_k``, and the fusion with
    first-stage scores (``fusion`` ``"minmax"`` or ``"rrf"``, ``fusion_weight`` in [0, 1]; see
    :mod:`crossrank.fusion`), used when :meth:`apply` is given them.

    >>> hits = Selection(top_k=1).apply([-1.0, 3.0], ["a", "b"])
    >>> hits[0].index, round(hits[0].score, 3), hits[0].logit
    (1, 0.953, 3.0)
    """

    top_k: Optional[int] = None
    threshold: Optional[float] = None
    min_keep: int = 0
    normalize: bool = True
    fusion: str = "minmax"
    fusion_weight: float = 0.5

    def __post_init__(self) -> None:
        checked = {
            "top_k": check_top_k(self.top_k),
            "threshold": check_threshold(self.threshold),
            "min_keep": check_min_keep(self.min_keep),
            "normalize": check_normalize(self.normalize),
            "fusion": check_fusion(self.fusion),
            "fusion_weight": check_fusion_weight(self.fusion_weight),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def scores(self, logits: Sequence[float], calibration=None) -> List[float]:
        """The scores results carry, in input order: normalized, or the logits themselves."""
        return activate(logits, calibration) if self.normalize else [float(x) for x in logits]

    def apply(
        self,
        logits: Sequence[float],
        texts: Sequence[str],
        first_stage: Optional[Sequence[float]] = None,
        calibration=None,
    ) -> List[RankedDocument]:
        """One query's results, best first, from its raw ``logits`` (input order).

        With ``first_stage`` (the retriever's score of each document) results are ordered by the
        fused score, which ``threshold`` then applies to; each carries ``rerank_score`` and
        ``first_stage_score`` too.
        """
        if self.top_k == 0:
            return []
        scores = self.scores(logits, calibration)
        if first_stage is None:
            return select(scores, texts, self.top_k, self.threshold, self.min_keep, logits)
        return rank_fused(
            texts,
            logits,
            scores,
            first_stage,
            self.fusion,
            self.fusion_weight,
            self.top_k,
            self.threshold,
            self.min_keep,
        )


def rank_fused(
    texts: Sequence[str],
    logits: Sequence[float],
    rerank_scores: Sequence[float],
    first_stage: Sequence[float],
    method: str = "minmax",
    weight: float = 0.5,
    top_k: Optional[int] = None,
    threshold: Optional[float] = None,
    min_keep: int = 0,
) -> List[RankedDocument]:
    """One query's documents ordered by the fused score, then selected as ``Reranker.rank`` does.

    ``threshold`` applies to the fused score (the returned ``score``), never leaving fewer than
    ``min_keep``; then ``top_k``. Each result also carries its ``rerank_score`` (taken from
    ``rerank_scores``) and its ``first_stage_score``. Also importable as
    ``crossrank.fusion.rank_fused``; :meth:`Selection.apply` does the same from logits alone.

    >>> [d.index for d in rank_fused(["a", "b"], [2.0, 1.0], [0.88, 0.73], [0.1, 0.9], weight=0.8)]
    [1, 0]
    """
    fused = fuse_scores(first_stage, logits, method, weight)
    ranked = select(fused, texts, top_k, threshold, min_keep, logits=logits)
    return [
        dataclasses.replace(
            hit,
            rerank_score=float(rerank_scores[hit.index]),
            first_stage_score=float(first_stage[hit.index]),
        )
        for hit in ranked
    ]


def validate_top_k(top_k: Optional[int], name: str = "top_k") -> None:
    """Raise a clear error unless ``top_k`` is None or a non-negative int."""
    check_top_k(top_k, name)
