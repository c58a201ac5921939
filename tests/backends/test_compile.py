"""compile=True: the torch model through torch.compile gives the eager scores; options checked."""

from __future__ import annotations

import pytest

from crossrank import Reranker
from crossrank.testing import BACKEND_PAIRS as LIST_PAIRS
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import reference_scores


@pytest.mark.slow
def test_compiled_scores_equal_eager_across_batch_shapes(bert_dir):
    eager = Reranker(bert_dir, device="cpu", max_length=64, batch_size=3)
    compiled = Reranker(bert_dir, device="cpu", max_length=64, batch_size=3, compile=True)
    assert compiled.info()["compile"] is True and eager.info()["compile"] is False
    # Batches of 3 and 1 rows and of several lengths: one dynamic-shape graph serves them all.
    for pairs in (LIST_PAIRS, LIST_PAIRS[:1], [list(p) for p in PAIRS]):
        expected = eager.compute_score(pairs)
        got = compiled.compute_score(pairs)
        assert got == pytest.approx(expected, abs=1e-5)
        assert got == pytest.approx(reference_scores(bert_dir, pairs, 64), abs=1e-5)
    query, documents = PAIRS[0][0], [p for _, p in PAIRS]
    assert [h.index for h in compiled.rank(query, documents)] == [
        h.index for h in eager.rank(query, documents)
    ]
    assert max(expected) - min(expected) > 1e-2  # the scores differ, so equality says something


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"compile": "yes"}, TypeError, "compile must be True or False"),
        ({"compile": True, "backend": "openvino"}, ValueError, "compile=True compiles the torch"),
    ],
)
def test_bad_compile_options(bert_dir, kwargs, error, message):
    with pytest.raises(error, match=message):
        Reranker(bert_dir, device="cpu", **kwargs)
