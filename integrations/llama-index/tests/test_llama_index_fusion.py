"""CrossRankRerank(fusion=...): the retriever's NodeWithScore.score fused with the reranker's."""

from __future__ import annotations

import asyncio
import copy
from typing import List

import pytest
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

from crossrank.errors import ArgumentError

QUERY = "what do giant pandas eat?"
PASSAGES = [
    "the weather in paris is rain and cloud",
    "giant pandas eat bamboo in china",
    "python is a language for code",
    "the black and white bear is a panda",
    "a cat and a dog in the city",
    "rerank the passage for the query",
]
RETRIEVER = [0.82, 0.31, 0.77, 0.45, 0.93, 0.12]  # similarities, distinct, not the rerank order


def make_nodes(scores=RETRIEVER) -> List[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"node-{i}", metadata={"title": f"doc {i}"}), score=score
        )
        for i, (text, score) in enumerate(zip(PASSAGES, scores))
    ]


def ids(nodes):
    return [item.node.node_id for item in nodes]


def snapshot(nodes):
    return [(item.score, item.node.model_dump()) for item in nodes]


def texts(nodes):
    return [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in nodes]


@pytest.mark.parametrize("fusion, weight", [("minmax", 0.5), ("minmax", 0.3), ("rrf", 0.7)])
def test_fused_nodes_follow_reranker_rank_with_the_retriever_scores(reranker, fusion, weight):
    nodes = make_nodes()
    before = snapshot(nodes)
    post = CrossRankRerank(reranker=reranker, top_n=None, fusion=fusion, fusion_weight=weight)
    out = post.postprocess_nodes(nodes, query_str=QUERY)
    hits = reranker.rank(
        QUERY, texts(nodes), first_stage_scores=RETRIEVER, fusion=fusion, fusion_weight=weight
    )
    assert ids(out) == [nodes[h.index].node.node_id for h in hits]
    assert [item.score for item in out] == [h.score for h in hits]
    plain = CrossRankRerank(reranker=reranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert ids(out) != ids(plain)  # fusion changed something
    assert snapshot(nodes) == before  # the caller's nodes and their scores are untouched


def test_weight_one_is_the_retriever_order_and_zero_the_reranker_order(reranker):
    nodes = make_nodes()
    one = CrossRankRerank(reranker=reranker, top_n=None, fusion="rrf", fusion_weight=1.0)
    by_retriever = sorted(nodes, key=lambda item: -item.score)
    assert ids(one.postprocess_nodes(nodes, query_str=QUERY)) == ids(by_retriever)
    zero = CrossRankRerank(reranker=reranker, top_n=None, fusion="minmax", fusion_weight=0.0)
    plain = CrossRankRerank(reranker=reranker, top_n=None)
    assert ids(zero.postprocess_nodes(nodes, query_str=QUERY)) == ids(
        plain.postprocess_nodes(nodes, query_str=QUERY)
    )


def test_keep_retrieval_score_and_threshold_on_the_fused_score(reranker):
    nodes = make_nodes()
    full = CrossRankRerank(
        reranker=reranker, top_n=None, fusion="minmax", keep_retrieval_score=True
    ).postprocess_nodes(nodes, query_str=QUERY)
    by_id = {item.node.node_id: item.score for item in nodes}
    assert [item.node.metadata["retrieval_score"] for item in full] == [
        by_id[item.node.node_id] for item in full
    ]
    cut = full[2].score
    kept = CrossRankRerank(reranker=reranker, top_n=None, fusion="minmax", score_threshold=cut)
    assert ids(kept.postprocess_nodes(nodes, query_str=QUERY)) == [
        item.node.node_id for item in full if item.score >= cut
    ]


def test_a_node_without_a_score_is_an_error_naming_it(reranker):
    nodes = make_nodes()
    nodes[2] = NodeWithScore(node=nodes[2].node)  # score None
    post = CrossRankRerank(reranker=reranker, fusion="minmax")
    with pytest.raises(ValueError, match=r"nodes\[2\]\.score is None.*fusion=None"):
        post.postprocess_nodes(nodes, query_str=QUERY)
    with pytest.raises(ValueError, match=r"nodes\[2\]\.score is None"):
        asyncio.run(post.apostprocess_nodes(nodes, query_str=QUERY))
    nodes[2] = NodeWithScore(node=nodes[2].node, score=float("inf"))
    with pytest.raises(ArgumentError, match=r"nodes\[2\]\.score is inf"):
        post.postprocess_nodes(nodes, query_str=QUERY)
    # without fusion a missing score is fine
    assert len(CrossRankRerank(reranker=reranker).postprocess_nodes(nodes, query_str=QUERY)) == 3


def test_fusion_fields_are_validated_and_round_trip(reranker):
    with pytest.raises(ValidationError, match="fusion"):
        CrossRankRerank(reranker=reranker, fusion="sum")
    with pytest.raises(ValidationError, match="fusion_weight"):
        CrossRankRerank(reranker=reranker, fusion="rrf", fusion_weight=2.0)
    post = CrossRankRerank(reranker=reranker, fusion="rrf", fusion_weight=0.25)
    with pytest.raises(ValidationError, match="fusion_weight"):
        post.fusion_weight = -1
    dumped = post.to_dict()
    assert dumped["fusion"] == "rrf" and dumped["fusion_weight"] == 0.25


def test_empty_nodes_give_nothing(reranker):
    assert (
        CrossRankRerank(reranker=reranker, fusion="minmax").postprocess_nodes([], query_str=QUERY)
        == []
    )


@pytest.mark.parametrize("selection", [{"top_n": None}, {"top_n": 2, "score_threshold": 0.3}])
def test_remote_fusion_equals_local(server_url, reranker, selection):
    options = {"fusion": "rrf", "fusion_weight": 0.6, **selection}
    nodes = make_nodes()
    before = copy.deepcopy(snapshot(nodes))
    local = CrossRankRerank(reranker=reranker, **options).postprocess_nodes(nodes, query_str=QUERY)
    remote = CrossRankRerank(base_url=server_url, api_key="test-key", **options)
    for out in (
        remote.postprocess_nodes(nodes, query_str=QUERY),
        asyncio.run(remote.apostprocess_nodes(nodes, query_str=QUERY)),
    ):
        assert ids(out) == ids(local)
        assert [item.score for item in out] == pytest.approx([i.score for i in local], abs=1e-6)
    assert snapshot(nodes) == before
