"""rank_many: several queries in shared batches, each result equal to its own rank() call."""

from __future__ import annotations

import pytest

from crossrank import Reranker

QUERIES = [f"what does a {w} eat" for w in ("panda", "bear", "cat", "dog", "snake", "python")]
DOCS = [
    "the giant panda eats bamboo in china",
    "paris is the capital city of france",
    "a black bear eats fish and water",
    "rain falls from a cloud in the sky",
    "a python is a snake",
    "the cat and the dog",
]


def test_each_result_equals_rank_and_batches_are_shared(bert_dir):
    reranker = Reranker(bert_dir, max_length=48, batch_size=32)
    queries = QUERIES * 6  # 36 queries
    documents = [DOCS[i % 3 : i % 3 + 3] for i in range(len(queries))]  # 3 documents each
    start = reranker.stats()["forward_passes"]
    many = reranker.rank_many(queries, documents, top_k=2, threshold=0.0)
    shared = reranker.stats()["forward_passes"] - start

    start = reranker.stats()["forward_passes"]
    one_by_one = [reranker.rank(q, d, top_k=2, threshold=0.0) for q, d in zip(queries, documents)]
    looped = reranker.stats()["forward_passes"] - start

    assert len(many) == len(queries)
    for got, want in zip(many, one_by_one):
        assert [h.index for h in got] == [h.index for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
        assert [h.text for h in got] == [h.text for h in want]
    assert looped == len(queries)  # one forward pass per rank call
    assert shared < looped / 4, f"{shared} forward passes for {len(queries)} queries"


def test_selection_options_apply_per_query(bert_dir):
    reranker = Reranker(bert_dir, max_length=48)
    queries, documents = QUERIES[:3], [DOCS, DOCS[:2], []]
    results = reranker.rank_many(queries, documents, threshold=1.0, min_keep=1)
    assert [len(r) for r in results] == [1, 1, 0]  # nothing reaches 1.0; min_keep keeps the best
    best = reranker.rank(queries[0], DOCS)[0]
    assert results[0][0].index == best.index
    raw = reranker.rank_many(queries, documents, normalize=False)
    assert raw[1][0].score == pytest.approx(
        reranker.compute_score([queries[1], DOCS[raw[1][0].index]]), abs=1e-5
    )
    assert reranker.rank_many(queries, documents, top_k=0) == [[], [], []]
    assert reranker.rank_many([], []) == []


@pytest.mark.parametrize(
    "queries, documents, error, message",
    [
        (["q"], [["a"], ["b"]], ValueError, "queries has 1 entries but documents_per_query has 2"),
        ("q", [["a"]], TypeError, "queries must be a list of str"),
        (["q", ""], [["a"], ["b"]], ValueError, "queries\\[1\\] is empty"),
        (["q"], ["abc"], TypeError, "documents_per_query\\[0\\] must be a list"),
        (["q"], [["a", 3]], TypeError, "documents_per_query\\[0\\]\\[1\\] is int"),
        (["q"], [{"a": 1}], TypeError, "ordered list"),
    ],
)
def test_bad_arguments_name_the_argument(bert_dir, queries, documents, error, message):
    reranker = Reranker(bert_dir, max_length=48)
    with pytest.raises(error, match=message):
        reranker.rank_many(queries, documents)
