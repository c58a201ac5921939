"""Every bad argument gets a clear error naming it; every ordered collection of inputs works."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import Reranker
from crossrank.testing import SCORING_PAIRS as PAIRS

LIST_PAIRS = [list(p) for p in PAIRS]
QUERY = "what does a panda eat"
DOCS = ["the giant panda eats bamboo", "paris is the capital of france", "a python is a snake"]


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


def test_pairs_from_numpy_pandas_and_tuples_score_like_a_list(reranker):
    expected = reranker.compute_score(LIST_PAIRS)
    assert reranker.compute_score(np.array(LIST_PAIRS)) == pytest.approx(expected, abs=1e-6)
    assert reranker.compute_score(tuple(map(tuple, LIST_PAIRS))) == pytest.approx(expected)
    assert reranker.compute_score(p for p in LIST_PAIRS) == pytest.approx(expected)
    pandas = pytest.importorskip("pandas")
    series = pandas.Series(LIST_PAIRS)
    assert reranker.compute_score(series) == pytest.approx(expected, abs=1e-6)
    frame = pandas.DataFrame(LIST_PAIRS, columns=["query", "passage"])
    assert reranker.compute_score(frame.values) == pytest.approx(expected, abs=1e-6)
    single = reranker.compute_score(np.array(LIST_PAIRS[0]))
    assert single == pytest.approx(expected[0], abs=1e-6)


def test_pairs_from_a_datasets_column(reranker):
    datasets = pytest.importorskip("datasets")
    column = datasets.Dataset.from_dict({"pairs": LIST_PAIRS})["pairs"]
    assert reranker.compute_score(column) == pytest.approx(
        reranker.compute_score(LIST_PAIRS), abs=1e-6
    )


def test_numpy_scalars_are_accepted(reranker):
    hits = reranker.rank(QUERY, DOCS, top_k=np.int64(2), threshold=np.float32(0.0))
    assert [h.index for h in hits] == [h.index for h in reranker.rank(QUERY, DOCS, top_k=2)]
    assert reranker.compute_score(LIST_PAIRS, normalize=np.bool_(True)) == pytest.approx(
        reranker.compute_score(LIST_PAIRS, normalize=True)
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": float("nan")}, "threshold is NaN"),
        ({"threshold": "0.5"}, "threshold must be a number"),
        ({"top_k": 1.5}, "top_k must be an int"),
        ({"top_k": -1}, "top_k must be an int >= 0"),
        ({"top_k": True}, "top_k must be an int"),
        ({"normalize": "no"}, "normalize must be True or False"),
        ({"normalize": None}, "normalize must be True or False"),
        ({"batch_size": "8"}, "batch_size must be an int"),
        ({"batch_size": 1.5}, "batch_size must be an int"),
        ({"batch_size": True}, "batch_size must be an int"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"min_keep": -1}, "min_keep must be an int >= 0"),
    ],
)
def test_bad_rank_options_name_the_argument(reranker, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        reranker.rank(QUERY, DOCS, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"normalize": "no"}, "normalize must be True or False"),
        ({"batch_size": "8"}, "batch_size must be an int"),
        ({"query_max_length": 600}, "query_max_length=600 must be less than max_length=48"),
        ({"query_max_length": -5}, "query_max_length must be an int >= 1"),
        ({"query_max_length": 0}, "query_max_length must be an int >= 1"),
        ({"max_length": 4}, "max_length must be an int >= 16"),
    ],
)
def test_bad_compute_score_options_name_the_argument(reranker, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        reranker.compute_score(LIST_PAIRS, **kwargs)


def test_unordered_documents_are_refused(reranker):
    with pytest.raises(TypeError, match="documents must be an ordered list.*dict"):
        reranker.rank(QUERY, {d: 1 for d in DOCS})
    with pytest.raises(TypeError, match="documents must be an ordered list.*set"):
        reranker.rank(QUERY, set(DOCS))
    assert len(reranker.rank(QUERY, (d for d in DOCS))) == len(DOCS)  # a generator is ordered


def test_lone_surrogates_are_refused_naming_the_document(reranker):
    with pytest.raises(ValueError, match=r"documents\[1\] holds '\\ud800'.*surrogate"):
        reranker.rank(QUERY, ["fine", "bad \ud800 text"])
    with pytest.raises(ValueError, match=r"query holds"):
        reranker.rank("bad \udfff", DOCS)
    with pytest.raises(ValueError, match=r"sentence_pairs\[0\]\[1\] holds"):
        reranker.compute_score([["q", "\ud800"]])


def test_identical_pairs_get_identical_scores_and_keep_input_order(reranker):
    hits = reranker.rank(QUERY, ["the same text"] * 3 + ["other text"] * 2)
    same = [h for h in hits if h.text == "the same text"]
    assert len({h.score for h in same}) == 1
    assert [h.index for h in same] == [0, 1, 2]
    start = reranker.stats()["pairs_scored"]
    reranker.compute_score([[QUERY, "x"]] * 50)
    assert reranker.stats()["pairs_scored"] - start == 1  # scored once, shared by all 50


def test_empty_inputs_give_empty_results(reranker):
    assert reranker.compute_score([]) == []
    assert reranker.rank(QUERY, []) == []
    assert reranker.rank(QUERY, iter([])) == []
    assert reranker.rank_many([QUERY], [[]]) == [[]]


def test_nothing_passed_in_is_mutated(reranker):
    pairs = [list(p) for p in LIST_PAIRS]
    docs = list(DOCS)
    snapshot = ([list(p) for p in pairs], list(docs))
    reranker.compute_score(pairs, normalize=True)
    reranker.rank(QUERY, docs, top_k=1, threshold=0.2, min_keep=1)
    reranker.rank_many([QUERY], [docs])
    assert (pairs, docs) == snapshot
