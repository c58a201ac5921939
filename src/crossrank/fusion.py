"""Fusing a first-stage retriever's scores with the reranker's, per query.

One implementation for ``Reranker.rank(first_stage_scores=...)``, ``rank_many``, the LangChain and
LlamaIndex wrappers and ``crossrank eval`` (:func:`crossrank.evaluation.fuse`), so the product and
the evaluation cannot disagree. The reranker's side is always its raw logits. ``weight`` is the
weight of the first-stage score: 0 keeps the reranker's order, 1 the retriever's. Both methods give
fused scores in [0, 1], higher is better:

- ``"minmax"``: ``weight × minmax(first_stage) + (1 − weight) × minmax(logits)``. A list whose
  scores are all equal (one document, or a retriever's ties) normalizes to 1.0 everywhere.
- ``"rrf"``: weighted reciprocal-rank fusion,
  ``(k + 1) × (weight / (k + rank_first) + (1 − weight) / (k + rank_rerank))`` with 1-based ranks
  (equal scores share the better rank) and ``k = 60``. The factor ``k + 1`` only rescales, so a
  document first in both lists scores 1; ``weight=0.5`` orders exactly as plain RRF.

Ties on the fused score follow the reranker's logit, then input order.

>>> fuse_scores([10.0, 5.0, 0.0], [-3.0, 1.0, 5.0], "minmax", weight=0.25)
[0.25, 0.5, 0.75]
>>> ranks([0.3, 0.9, 0.3])
[2, 1, 2]
"""

from __future__ import annotations

from typing import List, Sequence

from .inputs import FUSION_METHODS, check_fusion, check_fusion_weight
from .lazy import lazy_exports

RRF_K = 60

# rank_fused orders and selects, so it lives beside the one selection in crossrank.results (which
# imports this module's score math); the name stays importable from here, loaded on first use.
__getattr__, __dir__ = lazy_exports("crossrank", {"rank_fused": ".results"}, globals())

__all__ = ["FUSION_METHODS", "RRF_K", "fuse_scores", "min_max", "ranks"]


def min_max(scores: Sequence[float]) -> List[float]:
    """``(s − min) / (max − min)`` for each score; all equal (or one score) → all 1.0.

    >>> min_max([2.0, 4.0, 3.0]), min_max([7.0, 7.0])
    ([0.0, 1.0, 0.5], [1.0, 1.0])
    """
    if not scores:
        return []
    low, high = min(scores), max(scores)
    span = high - low
    return [(s - low) / span if span > 0 else 1.0 for s in scores]


def ranks(scores: Sequence[float]) -> List[int]:
    """1-based rank of each score, best (highest) first; equal scores share the better rank."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    result = [0] * len(scores)
    for position, i in enumerate(order):
        if position and scores[order[position - 1]] == scores[i]:
            result[i] = result[order[position - 1]]
        else:
            result[i] = position + 1
    return result


def fuse_scores(
    first_stage: Sequence[float],
    logits: Sequence[float],
    method: str = "minmax",
    weight: float = 0.5,
    k: int = RRF_K,
) -> List[float]:
    """Fused scores in [0, 1], in input order, of one query's documents (see the module docs).

    ``first_stage[i]`` and ``logits[i]`` score the same document.
    """
    method, weight = check_fusion(method, "method"), check_fusion_weight(weight, "weight")
    if len(first_stage) != len(logits):
        raise ValueError(
            f"first_stage has {len(first_stage)} scores but logits has {len(logits)}; "
            "pass one of each per document"
        )
    if method == "minmax":
        a, b = min_max(first_stage), min_max(logits)
        return [weight * x + (1.0 - weight) * y for x, y in zip(a, b)]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    top = 1.0 + k
    return [
        top * (weight / (k + r1) + (1.0 - weight) / (k + r2))
        for r1, r2 in zip(ranks(first_stage), ranks(logits))
    ]
