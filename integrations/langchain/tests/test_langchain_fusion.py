"""CrossRankRerank(fusion=...): the retriever's score (metadata[score_key]) fused with the reranker's."""

from __future__ import annotations

import asyncio
import copy

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankRerank
from pydantic import ValidationError

from crossrank.errors import ArgumentError

QUERY = "what do giant pandas eat"
KEY = "test-key"


def snapshot(documents):
    return [(d.page_content, d.id, copy.deepcopy(d.metadata)) for d in documents]


@pytest.fixture
def scored(documents):
    """The shared documents, each with a retriever score in metadata["score"] (distinct)."""
    return [
        d.model_copy(update={"metadata": {**d.metadata, "score": float((5 * i) % 8) + 0.5}})
        for i, d in enumerate(documents)
    ]


def first_stage(documents, key="score"):
    return [d.metadata[key] for d in documents]


@pytest.mark.parametrize("fusion, weight", [("minmax", 0.5), ("minmax", 0.2), ("rrf", 0.6)])
def test_fused_documents_follow_reranker_rank_with_the_retriever_scores(
    reranker, scored, fusion, weight
):
    before = snapshot(scored)
    compressor = CrossRankRerank(reranker=reranker, top_n=None, fusion=fusion, fusion_weight=weight)
    result = compressor.compress_documents(scored, QUERY)
    expected = reranker.rank(
        QUERY,
        [d.page_content for d in scored],
        first_stage_scores=first_stage(scored),
        fusion=fusion,
        fusion_weight=weight,
    )
    assert [d.id for d in result] == [scored[h.index].id for h in expected]
    assert [d.metadata["relevance_score"] for d in result] == [h.score for h in expected]
    assert [d.metadata["rerank_score"] for d in result] == [h.rerank_score for h in expected]
    assert [d.metadata["score"] for d in result] == [h.first_stage_score for h in expected]
    plain = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(scored, QUERY)
    assert [d.id for d in result] != [d.id for d in plain]  # fusion changed something
    assert snapshot(scored) == before  # the caller's documents are untouched


def test_weight_one_is_the_retriever_order_and_zero_the_reranker_order(reranker, scored):
    by_retriever = sorted(scored, key=lambda d: -d.metadata["score"])
    one = CrossRankRerank(reranker=reranker, top_n=None, fusion="minmax", fusion_weight=1.0)
    assert [d.id for d in one.compress_documents(scored, QUERY)] == [d.id for d in by_retriever]
    zero = CrossRankRerank(reranker=reranker, top_n=None, fusion="rrf", fusion_weight=0.0)
    plain = CrossRankRerank(reranker=reranker, top_n=None)
    assert [d.id for d in zero.compress_documents(scored, QUERY)] == [
        d.id for d in plain.compress_documents(scored, QUERY)
    ]


def test_score_key_names_where_the_retriever_score_is(reranker, scored):
    moved = [
        d.model_copy(update={"metadata": {"similarity": d.metadata["score"], "source": "x"}})
        for d in scored
    ]
    default = CrossRankRerank(reranker=reranker, top_n=3, fusion="minmax")
    custom = CrossRankRerank(reranker=reranker, top_n=3, fusion="minmax", score_key="similarity")
    want = [d.id for d in default.compress_documents(scored, QUERY)]
    assert [d.id for d in custom.compress_documents(moved, QUERY)] == want


def test_threshold_applies_to_the_fused_score(reranker, scored):
    every = CrossRankRerank(reranker=reranker, top_n=None, fusion="minmax")
    full = every.compress_documents(scored, QUERY)
    cut = full[2].metadata["relevance_score"]
    kept = CrossRankRerank(
        reranker=reranker, top_n=None, fusion="minmax", score_threshold=cut
    ).compress_documents(scored, QUERY)
    assert [d.id for d in kept] == [d.id for d in full if d.metadata["relevance_score"] >= cut]


def test_a_missing_or_bad_score_is_an_error_naming_it(reranker, scored):
    compressor = CrossRankRerank(reranker=reranker, fusion="minmax")
    missing = [*scored[:3], Document(page_content="no score here"), *scored[3:]]
    with pytest.raises(ValueError, match=r"documents\[3\]\.metadata has no 'score'.*score_key="):
        compressor.compress_documents(missing, QUERY)
    bad = [*scored[:1], Document(page_content="x", metadata={"score": "high"})]
    with pytest.raises(
        ArgumentError, match=r"documents\[1\]\.metadata\['score'\] must be a number"
    ):
        compressor.compress_documents(bad, QUERY)
    nan = [*scored[:1], Document(page_content="x", metadata={"score": float("nan")})]
    with pytest.raises(ArgumentError, match=r"documents\[1\]\.metadata\['score'\] is nan"):
        asyncio.run(compressor.acompress_documents(nan, QUERY))


def test_without_fusion_scores_are_not_needed(reranker, documents):
    result = CrossRankRerank(reranker=reranker, top_n=2).compress_documents(documents, QUERY)
    assert len(result) == 2 and all("rerank_score" not in d.metadata for d in result)


def test_fusion_fields_are_validated(reranker):
    with pytest.raises(ValidationError, match="fusion"):
        CrossRankRerank(reranker=reranker, fusion="linear")
    with pytest.raises(ValidationError, match="fusion_weight"):
        CrossRankRerank(reranker=reranker, fusion="rrf", fusion_weight=1.5)
    compressor = CrossRankRerank(reranker=reranker, fusion="rrf")
    with pytest.raises(ValidationError, match="fusion_weight"):
        compressor.fusion_weight = -0.1


def test_empty_documents_give_nothing(reranker):
    assert CrossRankRerank(reranker=reranker, fusion="minmax").compress_documents([], QUERY) == []


@pytest.mark.parametrize("selection", [{"top_n": None}, {"top_n": 3, "score_threshold": 0.4}])
def test_remote_fusion_equals_local(server_url, reranker, scored, selection):
    options = {"fusion": "minmax", "fusion_weight": 0.4, **selection}
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, **options)
    local = CrossRankRerank(reranker=reranker, **options).compress_documents(scored, QUERY)
    before = snapshot(scored)
    for result in (
        remote.compress_documents(scored, QUERY),
        asyncio.run(remote.acompress_documents(scored, QUERY)),
    ):
        assert [d.id for d in result] == [d.id for d in local]
        for got, want in zip(result, local):
            for key in ("relevance_score", "rerank_score", "score"):
                assert got.metadata[key] == pytest.approx(want.metadata[key], abs=1e-6)
    assert snapshot(scored) == before
