"""Comparisons tests make: rankings equal up to float noise, ranking agreement, counted calls.

>>> from crossrank.testing import assert_same_ranking, concordant_fraction
>>> assert_same_ranking([(1, 0.9), (0, 0.2)], [(1, 0.9 + 1e-7), (0, 0.2)])
>>> concordant_fraction([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
0.6666666666666666
"""

from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

from .data import PANDA_DOCS, PANDA_QUERY

Ranking = List[Tuple[int, float]]


def expected_ranking(reranker, docs=PANDA_DOCS, query=PANDA_QUERY, **options) -> Ranking:
    """``(index, score)`` of each hit of ``reranker.rank(query, docs, **options)``, best first."""
    return [(hit.index, hit.score) for hit in reranker.rank(query, docs, **options)]


def assert_same_ranking(got: Ranking, want: Ranking, abs_tol: float = 1e-5) -> None:
    """Assert the same indices in the same order, and scores equal up to ``abs_tol``.

    The default tolerance is float32 noise: requests that share padded batches may differ by it.
    """
    got_order, want_order = [i for i, _ in got], [i for i, _ in want]
    if got_order != want_order:
        raise AssertionError(f"order {got_order} != {want_order}")
    far = [
        (i, g, w)
        for (i, g), (_, w) in zip(got, want)
        if not math.isclose(g, w, rel_tol=0.0, abs_tol=abs_tol)
    ]
    if far:
        raise AssertionError(f"scores further apart than {abs_tol} (index, got, want): {far}")


def concordant_fraction(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of item pairs that ``a`` and ``b`` order the same way (Kendall-style agreement)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    same = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs)
    return same / len(pairs)


def count_calls(monkeypatch, owner: Any, name: str) -> list:
    """Wrap ``owner.name`` for one test; return the list each call appends its arguments to.

    ``monkeypatch`` is pytest's fixture, so the original is back after the test.

    >>> exports = count_calls(monkeypatch, onnx_backend, "export_onnx")  # doctest: +SKIP
    """
    calls: list = []
    original = getattr(owner, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def fail_forwards_above(model, rows: int, monkeypatch) -> List[int]:
    """Make ``model.forward`` raise CUDA's out-of-memory error for batches of more than ``rows``
    (``monkeypatch``: pytest's fixture, which undoes it); returns the list of every batch's rows,
    filled as forwards run."""
    import torch

    real_forward = model.forward
    sizes: List[int] = []

    def forward(*args: Any, input_ids=None, **kwargs: Any):
        sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    return sizes
