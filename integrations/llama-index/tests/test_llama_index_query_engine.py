"""End to end: a VectorStoreIndex embedded with real all-MiniLM-L6-v2 weights, reranked by crossrank.

The cross-encoder is a tiny random model, so its order is arbitrary but fixed: the tests check that
the query engines return exactly crossrank's order over the retrieved nodes, cut to ``top_n``, and
that this order is not the retriever's.
"""

from __future__ import annotations

import asyncio
from typing import List

import pytest
import torch
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

QUERY = "What do giant pandas eat?"
PASSAGES = [
    "Giant pandas eat bamboo almost exclusively, up to forty pounds of it every day.",
    "The giant panda is a bear native to the mountain forests of central China.",
    "Red pandas are small mammals that also feed on bamboo leaves and shoots.",
    "Paris is the capital city of France and sits on the river Seine.",
    "Python is a programming language known for its readable code.",
    "Clouds form when water vapour in the sky condenses into droplets.",
    "Black bears eat berries, nuts, insects and sometimes fish.",
    "Cross-encoders rerank retrieved passages by reading the query and passage together.",
]
RETRIEVED = 5
TOP_N = 3


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 sentence embeddings: mean pooling over tokens, then L2 normalization."""

    _tokenizer = PrivateAttr()
    _model = PrivateAttr()

    def __init__(self, path: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        super().__init__(model_name="all-MiniLM-L6-v2", embed_batch_size=16)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()

    def _embed(self, texts: List[str]) -> List[List[float]]:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).tolist()

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self._embed(texts)


@pytest.fixture(scope="module")
def index(minilm_path) -> VectorStoreIndex:
    nodes = [
        TextNode(text=text, id_=f"passage-{i}", metadata={"source": f"p{i}.txt"})
        for i, text in enumerate(PASSAGES)
    ]
    return VectorStoreIndex(nodes=nodes, embed_model=MiniLMEmbedding(minilm_path))


@pytest.fixture(scope="module")
def retrieved(index) -> List[NodeWithScore]:
    """What the retriever alone returns: checked to be a sensible, MiniLM-made ranking."""
    nodes = index.as_retriever(similarity_top_k=RETRIEVED).retrieve(QUERY)
    assert len(nodes) == RETRIEVED
    assert nodes[0].node.node_id == "passage-0", "MiniLM should find the bamboo passage first"
    assert set(ids(nodes)[:3]) == {"passage-0", "passage-1", "passage-2"}, "the panda passages"
    scores = [item.score for item in nodes]
    assert scores == sorted(scores, reverse=True)
    return nodes


@pytest.fixture(scope="module")
def expected(reranker, retrieved) -> List[NodeWithScore]:
    """crossrank's own ranking of the retrieved nodes' embed texts, cut to TOP_N."""
    texts = [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in retrieved]
    hits = reranker.rank(QUERY, texts)
    order = [retrieved[hit.index].node.node_id for hit in hits]
    # The data is chosen so that the reranker disagrees with the retriever; otherwise the
    # end-to-end checks could not tell a working postprocessor from a missing one.
    assert order != ids(retrieved)
    assert order[:TOP_N] != ids(retrieved)[:TOP_N]
    return [NodeWithScore(node=retrieved[hit.index].node, score=hit.score) for hit in hits[:TOP_N]]


def ids(nodes: List[NodeWithScore]) -> List[str]:
    return [item.node.node_id for item in nodes]


def assert_reranked(source_nodes: List[NodeWithScore], expected: List[NodeWithScore]) -> None:
    assert ids(source_nodes) == ids(expected)
    assert [item.score for item in source_nodes] == pytest.approx(
        [item.score for item in expected], abs=1e-6
    )


def test_as_query_engine_reranks_and_cuts(index, reranker, expected):
    post = CrossRankRerank(reranker=reranker, top_n=TOP_N)
    engine = index.as_query_engine(
        similarity_top_k=RETRIEVED, node_postprocessors=[post], llm=MockLLM()
    )
    response = engine.query(QUERY)
    assert_reranked(response.source_nodes, expected)
    assert isinstance(response.response, str) and response.response


def test_retriever_query_engine_sync_and_async(index, reranker, expected):
    post = CrossRankRerank(reranker=reranker, top_n=TOP_N, keep_retrieval_score=True)
    retriever = index.as_retriever(similarity_top_k=RETRIEVED)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[post])
    response = engine.query(QUERY)
    assert_reranked(response.source_nodes, expected)
    async_response = asyncio.run(engine.aquery(QUERY))
    assert_reranked(async_response.source_nodes, expected)
    for item in response.source_nodes:  # the retriever's cosine similarity, kept on the side
        assert 0.0 < item.node.metadata["retrieval_score"] <= 1.0
        assert item.node.metadata["retrieval_score"] != item.score


def test_plain_retriever_then_postprocessor(index, reranker, retrieved, expected):
    nodes = index.as_retriever(similarity_top_k=RETRIEVED).retrieve(QUERY)
    assert ids(nodes) == ids(retrieved)
    post = CrossRankRerank(reranker=reranker, top_n=TOP_N)
    assert_reranked(post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY)), expected)
    assert ids(nodes) == ids(retrieved), "the retrieved list must be left as it was"
