"""rank(): best first, threshold then top_k, ties in input order."""

from __future__ import annotations

import pytest

from crossrank import RankedDocument, Reranker
from crossrank.results import select

DOCS = [
    "Paris is the capital city of France.",
    "The giant panda eats bamboo.",
    "A python is a snake.",
    "Rain falls from a cloud in the sky.",
    "Bears of china eat bamboo.",
]


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


def test_rank_orders_by_score_and_matches_compute_score(reranker):
    query = "what does a panda eat"
    hits = reranker.rank(query, DOCS)
    scores = reranker.compute_score([[query, d] for d in DOCS], normalize=True)
    assert [h.index for h in hits] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert all(isinstance(h, RankedDocument) for h in hits)
    for hit in hits:
        assert hit.text == DOCS[hit.index]
        assert hit.score == pytest.approx(scores[hit.index], abs=1e-6)
    raw = reranker.rank(query, DOCS, normalize=False)
    assert raw[0].score == pytest.approx(
        reranker.compute_score([query, DOCS[raw[0].index]]), abs=1e-5
    )


def test_threshold_then_top_k(reranker):
    query = "what does a panda eat"
    all_hits = reranker.rank(query, DOCS)
    middle = all_hits[2].score
    kept = reranker.rank(query, DOCS, threshold=middle)
    assert [h.index for h in kept] == [h.index for h in all_hits[:3]]
    assert [h.index for h in reranker.rank(query, DOCS, threshold=middle, top_k=2)] == [
        h.index for h in all_hits[:2]
    ]
    assert reranker.rank(query, DOCS, top_k=10) == all_hits
    assert reranker.rank(query, DOCS, top_k=0) == []
    assert reranker.rank(query, DOCS, threshold=1.01) == []


def test_empty_documents_give_empty_results(reranker):
    assert reranker.rank("panda", []) == []
    assert reranker.compute_score([]) == []


def test_duplicate_documents_tie_and_keep_input_order(reranker):
    docs = ["The giant panda eats bamboo.", "A python is a snake.", "The giant panda eats bamboo."]
    hits = reranker.rank("panda", docs)
    same = [h.index for h in hits if h.text == docs[0]]
    assert same == [0, 2]


def test_select_is_stable_on_ties():
    ranked = select([0.5, 0.7, 0.5, 0.5], ["a", "b", "c", "d"], top_k=3)
    assert [d.index for d in ranked] == [1, 0, 2]
    assert [d.index for d in select([0.1, 0.4, 0.3], ["a", "b", "c"], threshold=0.3)] == [1, 2]
