"""Property tests (hypothesis) of ``rank`` and ``compute_score`` on a tiny model.

For any documents, query, ``top_k`` and ``threshold``: ``rank`` returns each input document at
most once with its own text and the score ``compute_score`` gives it, best first; ``top_k`` and
``threshold`` select exactly the documents their definitions name; the caller's list is left as it
was; empty inputs give empty results; ``compute_score`` keeps the input order.
"""

from __future__ import annotations

import copy
import math

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (dev extra) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crossrank import Reranker  # noqa: E402

# Scores of one pair may differ in the last bits with the batch it shares (padding, row position).
TOL = 1e-5
# Lone surrogates are refused by the core's input checks (tested there); every other character,
# including whitespace, punctuation and non-Latin scripts, is fair game.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
QUERY = TEXT.filter(lambda q: q.strip() != "")
DOCS = st.lists(TEXT, max_size=12)
SETTINGS = settings(
    max_examples=25,
    deadline=None,  # a shared CPU: time per example is no property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def reranker(model_dirs):
    return Reranker(model_dirs["bert"], max_length=128, batch_size=4)


@SETTINGS
@given(query=QUERY, documents=DOCS, normalize=st.booleans())
def test_rank_is_a_sorted_selection_with_each_documents_own_score(
    reranker, query, documents, normalize
):
    before = copy.deepcopy(documents)
    hits = reranker.rank(query, documents, normalize=normalize)
    assert documents == before  # not mutated
    assert sorted(h.index for h in hits) == list(range(len(documents)))
    assert all(h.text == documents[h.index] for h in hits)
    scores = [h.score for h in hits]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
    if documents:
        raw = reranker.compute_score([[query, d] for d in documents], normalize=normalize)
        assert [h.score for h in sorted(hits, key=lambda h: h.index)] == pytest.approx(raw, abs=TOL)
    if normalize:
        assert all(0.0 <= s <= 1.0 for s in scores)


@SETTINGS
@given(
    query=QUERY,
    documents=DOCS,
    top_k=st.none() | st.integers(min_value=1, max_value=15),
    threshold=st.none() | st.floats(min_value=0.0, max_value=1.0),
)
def test_top_k_and_threshold_select_what_they_say(reranker, query, documents, top_k, threshold):
    full = reranker.rank(query, documents)
    got = reranker.rank(query, documents, top_k=top_k, threshold=threshold)
    expected = [h for h in full if threshold is None or h.score >= threshold]
    expected = expected[:top_k] if top_k is not None else expected
    assert [h.index for h in got] == [h.index for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=TOL)


@SETTINGS
@given(query=QUERY, documents=DOCS, swap=st.randoms(use_true_random=False))
def test_compute_score_keeps_the_input_order(reranker, query, documents, swap):
    pairs = [[query, d] for d in documents]
    before = copy.deepcopy(pairs)
    scores = reranker.compute_score(pairs) if pairs else []
    assert pairs == before
    assert len(scores) == len(pairs) and all(math.isfinite(s) for s in scores)
    order = list(range(len(pairs)))
    swap.shuffle(order)
    if pairs:
        shuffled = reranker.compute_score([pairs[i] for i in order])
        assert shuffled == pytest.approx([scores[i] for i in order], abs=TOL)


@SETTINGS
@given(queries=st.lists(QUERY, max_size=4), data=st.data())
def test_rank_many_equals_rank_per_query(reranker, queries, data):
    documents = [data.draw(DOCS) for _ in queries]
    many = reranker.rank_many(queries, documents)
    assert len(many) == len(queries)
    for query, docs, hits in zip(queries, documents, many):
        alone = reranker.rank(query, docs)
        # Scores equal to float noise. The order is compared by score, not index: documents that
        # tokenize alike (two characters the vocabulary maps to [UNK]) tie, and shared batches
        # can break such a tie either way.
        assert {h.index: h.score for h in hits} == pytest.approx(
            {h.index: h.score for h in alone}, abs=TOL
        )
        assert [h.score for h in hits] == pytest.approx([h.score for h in alone], abs=TOL)


def test_empty_inputs_give_empty_results(reranker):
    assert reranker.rank("a query", []) == []
    assert reranker.rank("a query", [], top_k=3, threshold=0.5) == []
    assert reranker.rank_many([], []) == []
    assert reranker.compute_score([]) == []
