"""Choosing a threshold from judged data: what each threshold keeps, and the one to suggest.

Works on any score scale (calibrated probabilities, sigmoid scores, raw logits); ``crossrank
calibrate`` uses it on calibrated scores of held-out queries.

>>> rows = threshold_table([[0.9, 0.2], [0.4]], [[1, 0], [1]], [0.3, 0.5])
>>> [(r.threshold, r.precision, r.kept_per_query, r.share_empty) for r in rows]
[(0.3, 1.0, 1.0, 0.0), (0.5, 1.0, 0.5, 0.5)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .model import as_array

__all__ = ["ThresholdRow", "suggest_threshold", "threshold_table"]


@dataclass(frozen=True)
class ThresholdRow:
    """What ``rank(..., threshold=t)`` keeps over a set of judged queries.

    ``precision``: share of kept documents that are relevant (NaN when none is kept);
    ``recall``: share of the relevant candidates kept; ``kept_per_query``: mean documents kept;
    ``share_empty``: share of queries left with no document at all.
    """

    threshold: float
    precision: float
    recall: float
    kept_per_query: float
    share_empty: float


def _flatten(scores_per_query, labels_per_query) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(scores_per_query) != len(labels_per_query):
        raise ValueError("scores_per_query and labels_per_query differ in length")
    query = [np.full(len(s), i) for i, s in enumerate(scores_per_query)]
    scores = as_array([v for s in scores_per_query for v in s], "scores_per_query")
    labels = as_array([v for s in labels_per_query for v in s], "labels_per_query")
    if len(scores) != len(labels):
        raise ValueError("scores_per_query and labels_per_query differ in a query's length")
    return scores, labels, np.concatenate(query) if query else np.zeros(0, dtype=int)


def threshold_table(
    scores_per_query: Sequence[Sequence[float]],
    labels_per_query: Sequence[Sequence[int]],
    thresholds: Sequence[float],
) -> List[ThresholdRow]:
    """One :class:`ThresholdRow` per threshold: a document is kept when its score >= threshold.

    >>> threshold_table([[0.9, 0.2], [0.4]], [[1, 0], [1]], [0.3])[0].recall
    1.0
    """
    scores, labels, query = _flatten(scores_per_query, labels_per_query)
    queries, relevant = len(scores_per_query), float(labels.sum())
    rows = []
    for t in thresholds:
        kept = scores >= t
        n_kept = int(kept.sum())
        hits = float(labels[kept].sum())
        rows.append(
            ThresholdRow(
                threshold=float(t),
                precision=hits / n_kept if n_kept else math.nan,
                recall=hits / relevant if relevant else math.nan,
                kept_per_query=n_kept / queries if queries else 0.0,
                share_empty=1.0 - len(np.unique(query[kept])) / queries if queries else 0.0,
            )
        )
    return rows


def suggest_threshold(
    scores_per_query: Sequence[Sequence[float]],
    labels_per_query: Sequence[Sequence[int]],
    target_precision: Optional[float] = None,
) -> Optional[float]:
    """The threshold with the best F1, or the lowest one whose precision reaches the target.

    The threshold sits halfway between the last score kept and the next one down, so that scores
    of new documents near the boundary are not decided by a hair. ``None`` when no threshold
    reaches ``target_precision`` or there is nothing relevant.

    >>> round(suggest_threshold([[0.9, 0.7, 0.2]], [[1, 1, 0]]), 6)
    0.45
    """
    if target_precision is not None and not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    scores, labels, _ = _flatten(scores_per_query, labels_per_query)
    if not labels.sum():
        return None
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], np.cumsum(labels[order])
    # Candidate cut-offs: after the last of each group of equal scores.
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    precision = hits[last] / (last + 1)
    recall = hits[last] / labels.sum()
    if target_precision is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        pick = int(np.argmax(f1))
    else:
        reaching = np.flatnonzero(precision >= target_precision)
        if not len(reaching):
            return None
        pick = int(reaching[-1])  # the lowest threshold reaching it keeps the most
    end = last[pick]
    below = ranked[end + 1] if end + 1 < len(ranked) else ranked[end]
    return float((ranked[end] + below) / 2)
