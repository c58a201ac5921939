"""Ranked results, their selection (threshold, min_keep, top-k) and the score activation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .inputs import check_min_keep, check_threshold, check_top_k


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
    ``top_k`` still caps the result.

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


def validate_top_k(top_k: Optional[int], name: str = "top_k") -> None:
    """Raise a clear error unless ``top_k`` is None or a non-negative int."""
    check_top_k(top_k, name)
