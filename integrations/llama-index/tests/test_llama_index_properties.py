"""Hypothesis properties of CrossRankRerank: for any nodes and selection, the result is
``Reranker.rank``'s, mapped onto new nodes, and the caller's nodes are untouched."""

from __future__ import annotations

import copy

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORDS = ["panda", "bamboo", "bear", "china", "paris", "code", "rain", "the", "eats", ""]
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)
nodes = st.lists(
    st.builds(
        lambda text, tags, score: NodeWithScore(
            node=TextNode(text=text, metadata={"tags": tags}), score=score
        ),
        texts,
        st.lists(st.integers(0, 9), max_size=3),
        st.one_of(st.none(), st.floats(0.0, 1.0)),
    ),
    max_size=8,
)
selection = st.fixed_dictionaries(
    {
        "top_n": st.one_of(st.none(), st.integers(0, 10)),
        "score_threshold": st.one_of(st.none(), st.floats(0.0, 1.0)),
        "min_keep": st.integers(0, 4),
    }
)
QUERIES = st.sampled_from(["what do pandas eat", "paris rain", "code"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=nodes, query=QUERIES, options=selection)
def test_result_is_the_cores_rank_and_inputs_are_untouched(reranker, items, query, options):
    before = copy.deepcopy([item.model_dump() for item in items])
    post = CrossRankRerank(reranker=reranker, keep_retrieval_score=True, **options)
    out = post.postprocess_nodes((item for item in items), query_str=query)
    expected = reranker.rank(
        query,
        [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in items],
        top_k=options["top_n"],
        threshold=options["score_threshold"],
        min_keep=options["min_keep"],
    )
    assert [(n.node.node_id, n.score) for n in out] == [
        (items[h.index].node.node_id, h.score) for h in expected
    ]
    assert [n.node.metadata["retrieval_score"] for n in out] == [
        items[h.index].score for h in expected
    ]
    assert [item.model_dump() for item in items] == before
