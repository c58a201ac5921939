"""Ranked results and their selection (threshold, then top-k)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence


@dataclass(frozen=True)
class RankedDocument:
    """One reranked document: its position in the input, its score and its text."""

    index: int
    score: float
    text: str


def select(
    scores: Sequence[float],
    texts: Sequence[str],
    top_k: Optional[int] = None,
    threshold: Optional[float] = None,
) -> List[RankedDocument]:
    """Order documents best first, drop those scoring below ``threshold``, then keep ``top_k``.

    The sort is stable, so documents with equal scores keep their input order.

    >>> [d.index for d in select([0.2, 0.9, 0.2], ["a", "b", "c"], top_k=2)]
    [1, 0]
    """
    validate_top_k(top_k)
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number or None, got {type(threshold).__name__}")
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranked = [RankedDocument(index=i, score=float(scores[i]), text=texts[i]) for i in order]
    if threshold is not None:
        ranked = [doc for doc in ranked if doc.score >= threshold]
    if top_k is not None:
        ranked = ranked[:top_k]
    return ranked


def validate_top_k(top_k: Optional[int], name: str = "top_k") -> None:
    """Raise a clear error unless ``top_k`` is None or a non-negative int."""
    if top_k is None:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"{name} must be an int or None, got {type(top_k).__name__}")
    if top_k < 0:
        raise ValueError(f"{name} must be >= 0 (or None to keep every document), got {top_k}")
