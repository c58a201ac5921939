"""rank(first_stage_scores=...): the reranker's logits fused with a retriever's scores.

References are computed here with plain Python from ``compute_score`` outputs.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from crossrank import Reranker
from crossrank.errors import ArgumentError
from crossrank.evaluation import fuse
from crossrank.fusion import fuse_scores, min_max, ranks

QUERY = "what does a panda eat"
DOCS = [
    "Paris is the capital city of France.",
    "The giant panda eats bamboo.",
    "A python is a snake.",
    "Rain falls from a cloud in the sky.",
    "Bears of china eat bamboo.",
    "the cat and the dog",
]
FIRST_STAGE = [3.5, 12.0, 0.25, 7.75, 1.5, 5.0]  # a retriever's scores (BM25-like), distinct


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


@pytest.fixture(scope="module")
def logits(reranker):
    return reranker.compute_score([[QUERY, d] for d in DOCS])


def reference(first, logits, method, weight, k=60):
    """Fused scores by the documented formulas, written out independently."""
    n = len(first)
    if method == "minmax":

        def norm(xs):
            lo, hi = min(xs), max(xs)
            return [(x - lo) / (hi - lo) if hi > lo else 1.0 for x in xs]

        a, b = norm(first), norm(logits)
        return [weight * a[i] + (1 - weight) * b[i] for i in range(n)]

    def rank_of(xs):  # 1 + how many score strictly higher: equal scores share the better rank
        return [1 + sum(1 for y in xs if y > x) for x in xs]

    r1, r2 = rank_of(first), rank_of(logits)
    return [(k + 1) * (weight / (k + r1[i]) + (1 - weight) / (k + r2[i])) for i in range(n)]


def reference_order(fused, logits):
    return sorted(range(len(fused)), key=lambda i: (-fused[i], -logits[i], i))


def order(hits):
    return [h.index for h in hits]


@pytest.mark.parametrize("method", ["minmax", "rrf"])
@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_fused_order_and_scores_equal_the_reference(reranker, logits, method, weight):
    hits = reranker.rank(
        QUERY, DOCS, first_stage_scores=FIRST_STAGE, fusion=method, fusion_weight=weight
    )
    fused = reference(FIRST_STAGE, logits, method, weight)
    assert order(hits) == reference_order(fused, logits)
    normalized = reranker.compute_score([[QUERY, d] for d in DOCS], normalize=True)
    for hit in hits:
        assert hit.score == pytest.approx(fused[hit.index], abs=1e-9)
        assert 0.0 <= hit.score <= 1.0
        assert hit.logit == pytest.approx(logits[hit.index], abs=1e-6)
        assert hit.rerank_score == pytest.approx(normalized[hit.index], abs=1e-6)
        assert hit.first_stage_score == FIRST_STAGE[hit.index]
        assert hit.text == DOCS[hit.index]


@pytest.mark.parametrize("method", ["minmax", "rrf"])
def test_weight_zero_is_the_rerank_order_and_weight_one_the_retriever_order(reranker, method):
    plain = reranker.rank(QUERY, DOCS)
    zero = reranker.rank(
        QUERY, DOCS, first_stage_scores=FIRST_STAGE, fusion=method, fusion_weight=0
    )
    one = reranker.rank(QUERY, DOCS, first_stage_scores=FIRST_STAGE, fusion=method, fusion_weight=1)
    assert order(zero) == order(plain)
    assert order(one) == sorted(range(len(DOCS)), key=lambda i: -FIRST_STAGE[i])
    assert order(one) != order(plain)  # the two orders differ, so both checks mean something


@pytest.mark.parametrize("method", ["minmax", "rrf"])
def test_a_strong_first_stage_document_moves_up_as_the_weight_rises(reranker, logits, method):
    weakest = min(range(len(DOCS)), key=lambda i: logits[i])  # the reranker's last document
    first = [1.0] * len(DOCS)
    first[weakest] = 10.0
    for i in range(len(DOCS)):
        first[i] += 0.01 * i  # distinct scores, all far below the strong one
    positions = []
    for weight in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        hits = reranker.rank(
            QUERY, DOCS, first_stage_scores=first, fusion=method, fusion_weight=weight
        )
        positions.append(order(hits).index(weakest))
    assert positions[0] == len(DOCS) - 1 and positions[-1] == 0
    assert positions == sorted(positions, reverse=True), positions


def test_rrf_uses_ranks_only(reranker):
    squashed = [math.log(s) for s in FIRST_STAGE]  # same order, other values
    a = reranker.rank(QUERY, DOCS, first_stage_scores=FIRST_STAGE, fusion="rrf", fusion_weight=0.7)
    b = reranker.rank(QUERY, DOCS, first_stage_scores=squashed, fusion="rrf", fusion_weight=0.7)
    assert order(a) == order(b) and [h.score for h in a] == [h.score for h in b]


def test_threshold_min_keep_and_top_k_apply_to_the_fused_score(reranker):
    options = {"first_stage_scores": FIRST_STAGE, "fusion_weight": 0.5}
    every = reranker.rank(QUERY, DOCS, **options)
    third = every[2].score
    kept = reranker.rank(QUERY, DOCS, threshold=third, **options)
    assert kept == [h for h in every if h.score >= third] and len(kept) >= 3
    assert reranker.rank(QUERY, DOCS, threshold=third, top_k=2, **options) == every[:2]
    assert reranker.rank(QUERY, DOCS, threshold=1.5, min_keep=2, **options) == every[:2]
    assert reranker.rank(QUERY, DOCS, threshold=1.5, **options) == []
    assert reranker.rank(QUERY, DOCS, top_k=0, **options) == []


def test_normalize_false_changes_only_the_rerank_score(reranker, logits):
    fused = reranker.rank(QUERY, DOCS, first_stage_scores=FIRST_STAGE)
    raw = reranker.rank(QUERY, DOCS, first_stage_scores=FIRST_STAGE, normalize=False)
    assert [(h.index, h.score) for h in raw] == [(h.index, h.score) for h in fused]
    assert [h.rerank_score for h in raw] == pytest.approx([logits[h.index] for h in raw], abs=1e-6)


def test_equal_first_stage_scores_keep_the_rerank_order(reranker):
    plain = reranker.rank(QUERY, DOCS)
    for method in ("minmax", "rrf"):
        same = [2.0] * len(DOCS)
        fused = reranker.rank(QUERY, DOCS, first_stage_scores=same, fusion=method)
        assert order(fused) == order(plain)
    (only,) = reranker.rank(QUERY, DOCS[:1], first_stage_scores=[4.0])
    assert only.score == 1.0  # one document: both sides normalize to 1, no division by zero


def test_without_first_stage_scores_nothing_changes(reranker):
    plain = reranker.rank(QUERY, DOCS, top_k=4)
    assert reranker.rank(QUERY, DOCS, top_k=4, fusion="rrf", fusion_weight=0.9) == plain
    assert all(h.rerank_score is None and h.first_stage_score is None for h in plain)


def test_rank_many_equals_rank_per_query(reranker):
    queries = [QUERY, "where is paris", "a snake"]
    documents = [DOCS, DOCS[:3], DOCS[2:]]
    first = [FIRST_STAGE, FIRST_STAGE[:3], FIRST_STAGE[2:]]
    many = reranker.rank_many(
        queries, documents, top_k=3, first_stage_scores=first, fusion="rrf", fusion_weight=0.4
    )
    for q, d, f, got in zip(queries, documents, first, many):
        want = reranker.rank(q, d, top_k=3, first_stage_scores=f, fusion="rrf", fusion_weight=0.4)
        assert order(got) == order(want)
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-9)


def test_inputs_are_not_mutated_and_any_sequence_works(reranker):
    docs, first = list(DOCS), list(FIRST_STAGE)
    from_list = reranker.rank(QUERY, docs, first_stage_scores=first)
    assert docs == DOCS and first == FIRST_STAGE
    from_array = reranker.rank(QUERY, docs, first_stage_scores=np.array(FIRST_STAGE))
    from_tuple = reranker.rank(QUERY, docs, first_stage_scores=tuple(FIRST_STAGE))
    assert from_array == from_list == from_tuple


def test_empty_documents_give_empty_results(reranker):
    assert reranker.rank(QUERY, [], first_stage_scores=[]) == []
    assert reranker.rank_many([QUERY], [[]], first_stage_scores=[[]]) == [[]]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"first_stage_scores": FIRST_STAGE[:-1]}, "first_stage_scores has 5 scores for 6"),
        ({"first_stage_scores": FIRST_STAGE[:-1] + [float("nan")]}, r"first_stage_scores\[5\]"),
        ({"first_stage_scores": [float("inf")] + FIRST_STAGE[1:]}, r"first_stage_scores\[0\]"),
        ({"first_stage_scores": ["1.0"] + FIRST_STAGE[1:]}, r"first_stage_scores\[0\]"),
        ({"first_stage_scores": [True] + FIRST_STAGE[1:]}, r"first_stage_scores\[0\]"),
        ({"first_stage_scores": {"a": 1.0}}, "first_stage_scores"),
        ({"first_stage_scores": FIRST_STAGE, "fusion": "linear"}, "fusion must be one of"),
        ({"first_stage_scores": FIRST_STAGE, "fusion": None}, "fusion must be one of"),
        ({"fusion": "RRF"}, "fusion must be one of"),
        ({"first_stage_scores": FIRST_STAGE, "fusion_weight": 1.5}, "fusion_weight must be in"),
        ({"first_stage_scores": FIRST_STAGE, "fusion_weight": -0.1}, "fusion_weight must be in"),
        ({"fusion_weight": float("nan")}, "fusion_weight must be in"),
        ({"fusion_weight": "0.5"}, "fusion_weight must be a number"),
    ],
)
def test_bad_fusion_arguments_are_errors_naming_them(reranker, kwargs, name):
    before = reranker.stats()["pairs_scored"]
    with pytest.raises(ArgumentError, match=name):
        reranker.rank(QUERY, DOCS, **kwargs)
    assert reranker.stats()["pairs_scored"] == before  # refused before any scoring


def test_rank_many_names_the_query_whose_scores_are_wrong(reranker):
    with pytest.raises(ArgumentError, match="first_stage_scores has 1 lists for 2 queries"):
        reranker.rank_many([QUERY, QUERY], [DOCS, DOCS], first_stage_scores=[FIRST_STAGE])
    with pytest.raises(ArgumentError, match=r"first_stage_scores\[1\] has 2 scores for 6"):
        reranker.rank_many(
            [QUERY, QUERY], [DOCS, DOCS], first_stage_scores=[FIRST_STAGE, [1.0, 2.0]]
        )
    with pytest.raises(ArgumentError, match=r"first_stage_scores\[0\]\[2\]"):
        reranker.rank_many([QUERY], [DOCS[:3]], first_stage_scores=[[1.0, 2.0, float("nan")]])


# ---------------------------------------------------------------- the shared functions, eval


def test_min_max_and_ranks():
    assert min_max([]) == [] and min_max([3.0]) == [1.0]
    assert min_max([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    assert ranks([0.5, 0.9, 0.5, 0.1]) == [2, 1, 2, 4]


def test_eval_fuse_is_the_product_fusion_and_the_old_formula():
    rng = random.Random(0)
    first = {f"q{q}": {f"d{d}": rng.uniform(0, 20) for d in range(30)} for q in range(5)}
    model = {q: {d: rng.gauss(0, 3) for d in docs} for q, docs in first.items()}
    first_copy = {q: dict(docs) for q, docs in first.items()}
    for weight in (0.0, 0.3, 0.5, 1.0):
        fused = fuse(first, model, weight)
        for q, scores in model.items():
            docs = list(scores)
            product = fuse_scores(
                [first[q][d] for d in docs], [scores[d] for d in docs], "minmax", weight
            )
            assert [fused[q][d] for d in docs] == product
            # the formula crossrank eval used before fusion.py (bit for bit)
            lo1, hi1 = min(first[q].values()), max(first[q].values())
            lo2, hi2 = min(scores.values()), max(scores.values())
            old = [
                weight * ((first[q][d] - lo1) / (hi1 - lo1))
                + (1.0 - weight) * ((scores[d] - lo2) / (hi2 - lo2))
                for d in docs
            ]
            assert product == old
    assert first == first_copy  # not mutated


def test_eval_fuse_errors_and_rrf():
    first = {"q": {"a": 3.0, "b": 1.0}}
    model = {"q": {"a": -1.0, "b": 2.0}}
    with pytest.raises(ValueError, match="fuse weight"):
        fuse(first, model, 1.5)
    with pytest.raises(ValueError, match="'c' is reranked but has no first-stage score"):
        fuse(first, {"q": {"a": 1.0, "c": 0.0}}, 0.5)
    assert fuse(first, model, 0.5, method="rrf")["q"] == pytest.approx(
        {"a": 61 * (0.5 / 61 + 0.5 / 62), "b": 61 * (0.5 / 62 + 0.5 / 61)}
    )
    assert fuse(first, {"q": {}}, 0.5) == {"q": {}}
