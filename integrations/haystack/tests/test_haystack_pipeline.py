"""CrossRankRanker inside real Haystack pipelines: BM25 retrieval, YAML round trip, async."""

from __future__ import annotations

import asyncio

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.crossrank import CrossRankRanker

from crossrank.testing import PANDA_DOCS, PANDA_QUERY, assert_same_ranking, expected_ranking


def bm25_store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents(
        [Document(content=text, meta={"n": i}) for i, text in enumerate(PANDA_DOCS)]
    )
    return store


def rag_pipeline(ranker: CrossRankRanker, store=None) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(store or bm25_store(), top_k=10))
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def inputs(**ranker):
    return {"retriever": {"query": PANDA_QUERY}, "ranker": {"query": PANDA_QUERY, **ranker}}


def ranked(result):
    return [(doc.meta["n"], doc.score) for doc in result["ranker"]["documents"]]


@pytest.mark.parametrize("selection", [{"top_k": None}, {"top_k": 2}, {"top_k": 3, "min_keep": 1}])
def test_bm25_pipeline_equals_reranker_rank(cross_encoder_dir, reranker, selection):
    pipeline = rag_pipeline(CrossRankRanker(cross_encoder_dir, max_length=128, **selection))
    pipeline.warm_up()
    result = pipeline.run(inputs())
    retrieved = [doc.meta["n"] for doc in bm25_store().bm25_retrieval(PANDA_QUERY, top_k=10)]
    texts = [PANDA_DOCS[n] for n in retrieved]
    options = {"top_k": selection["top_k"], "min_keep": selection.get("min_keep", 0)}
    want = [(retrieved[i], s) for i, s in expected_ranking(reranker, texts, PANDA_QUERY, **options)]
    assert_same_ranking(ranked(result), want)


def test_run_time_top_k_and_threshold_reach_the_ranker(reranker):
    pipeline = rag_pipeline(CrossRankRanker(reranker=reranker, top_k=None))
    assert len(ranked(pipeline.run(inputs(top_k=1)))) == 1
    assert ranked(pipeline.run(inputs(score_threshold=1.0))) == []


def test_fusion_uses_the_retriever_score(reranker):
    store = bm25_store()
    retrieved = store.bm25_retrieval(PANDA_QUERY, top_k=10)
    pipeline = rag_pipeline(CrossRankRanker(reranker=reranker, top_k=None, fusion="minmax"), store)
    want = expected_ranking(
        reranker,
        [doc.content for doc in retrieved],
        PANDA_QUERY,
        top_k=None,
        first_stage_scores=[doc.score for doc in retrieved],
        fusion="minmax",
    )
    got = ranked(pipeline.run(inputs()))
    assert_same_ranking(got, [(retrieved[i].meta["n"], s) for i, s in want])


def test_yaml_round_trip_gives_the_same_ranking(cross_encoder_dir, reranker):
    ranker = CrossRankRanker(
        cross_encoder_dir, max_length=128, top_k=3, meta_fields_to_embed=["n"], fusion="rrf"
    )
    pipeline = rag_pipeline(ranker)
    text = pipeline.dumps()
    assert "CrossRankRanker" in text and "api_key" in text and "CROSSRANK_API_KEY" in text
    loaded = Pipeline.loads(text)
    assert loaded.dumps() == text
    loaded_ranker = loaded.get_component("ranker")
    assert (
        isinstance(loaded_ranker, CrossRankRanker) and loaded_ranker.to_dict() == ranker.to_dict()
    )
    assert ranked(loaded.run(inputs())) == ranked(pipeline.run(inputs()))


def test_shared_reranker_pipeline_saves_the_model_that_rebuilds_it(reranker):
    pipeline = rag_pipeline(CrossRankRanker(reranker=reranker, top_k=None))
    loaded = Pipeline.loads(pipeline.dumps())
    assert_same_ranking(ranked(loaded.run(inputs())), ranked(pipeline.run(inputs())))


def test_async_pipeline_run_awaits_run_async_and_equals_run(reranker, monkeypatch):
    pipeline = rag_pipeline(CrossRankRanker(reranker=reranker, top_k=3))
    sync = ranked(pipeline.run(inputs()))
    monkeypatch.setattr(CrossRankRanker, "run", None)  # Pipeline.run_async must not fall back to it
    assert_same_ranking(ranked(asyncio.run(pipeline.run_async(inputs()))), sync)


def test_a_retriever_that_finds_nothing_gives_nothing(reranker):
    pipeline = rag_pipeline(CrossRankRanker(reranker=reranker), InMemoryDocumentStore())
    assert pipeline.run(inputs())["ranker"]["documents"] == []
