"""CrossRankCrossEncoder: LangChain's BaseCrossEncoder, inside CrossEncoderReranker and a retriever."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_crossrank import CrossRankCrossEncoder
from pydantic import ValidationError

from crossrank import Reranker

QUERY = "what do giant pandas eat"


def test_is_a_base_cross_encoder(reranker):
    assert isinstance(CrossRankCrossEncoder(reranker=reranker), BaseCrossEncoder)


def test_scores_equal_compute_score(reranker, documents):
    pairs = [(QUERY, d.page_content) for d in documents]
    as_lists = [[q, p] for q, p in pairs]
    raw = CrossRankCrossEncoder(reranker=reranker).score(pairs)
    assert raw == reranker.compute_score(as_lists)
    assert CrossRankCrossEncoder(reranker=reranker, normalize=True).score(pairs) == (
        reranker.compute_score(as_lists, normalize=True)
    )
    assert CrossRankCrossEncoder(reranker=reranker).score([]) == []
    # Different queries in one call are fine: pairs are scored independently.
    mixed = [("paris", "paris is the capital city of france"), (QUERY, "pandas eat bamboo")]
    assert CrossRankCrossEncoder(reranker=reranker).score(mixed) == reranker.compute_score(
        [list(p) for p in mixed]
    )


def test_loads_by_model_with_reranker_kwargs(bert_dir, reranker, documents):
    pairs = [(QUERY, d.page_content) for d in documents]
    own = CrossRankCrossEncoder(
        model=bert_dir, device="cpu", max_length=128, reranker_kwargs={"cache_size": 16}
    )
    assert own.reranker is not reranker and own.reranker._cache is not None
    assert own.score(pairs) == pytest.approx(reranker.compute_score([list(p) for p in pairs]))


@pytest.fixture
def retriever(documents):
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents(documents)
    return store.as_retriever(search_kwargs={"k": 6})


def test_inside_cross_encoder_reranker_and_compression_retriever(reranker, retriever):
    candidates = retriever.invoke(QUERY)
    assert len(candidates) == 6
    compressor = CrossEncoderReranker(model=CrossRankCrossEncoder(reranker=reranker), top_n=3)
    pipeline = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=retriever)
    result = pipeline.invoke(QUERY)
    expected = reranker.rank(QUERY, [d.page_content for d in candidates], top_k=3)
    assert [d.id for d in result] == [candidates[h.index].id for h in expected]
    assert [d.id for d in result] != [d.id for d in candidates[:3]], "the reranker must reorder"


def test_bad_pairs_name_the_argument(reranker):
    encoder = CrossRankCrossEncoder(reranker=reranker)
    with pytest.raises(TypeError, match="text_pairs must be a list"):
        encoder.score(None)
    with pytest.raises(TypeError, match="text_pairs must be a list"):
        encoder.score("q")
    with pytest.raises(TypeError, match=r"text_pairs\[1\] must be a \(query, passage\) pair"):
        encoder.score([("q", "p"), ("q",)])
    with pytest.raises(TypeError, match=r"sentence_pairs\[0\]"):  # the core names non-str texts
        encoder.score([("q", 3)])


def test_construction_rule_and_assignment(reranker, bert_dir):
    with pytest.raises(ValidationError, match="either model= .* or reranker="):
        CrossRankCrossEncoder(model=bert_dir, reranker=reranker)
    encoder = CrossRankCrossEncoder(reranker=reranker)
    with pytest.raises(ValidationError, match="batch_size"):
        encoder.batch_size = 0
    with pytest.raises(ValidationError, match="frozen"):
        encoder.model = "other"
    encoder.normalize = True
    assert encoder.score([(QUERY, "pandas eat bamboo")])[0] == pytest.approx(
        reranker.compute_score([QUERY, "pandas eat bamboo"], normalize=True)
    )
    assert isinstance(encoder.reranker, Reranker)
