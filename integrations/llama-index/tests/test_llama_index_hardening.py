"""Issue 19 and 14 regressions: nodes checks, validation on assignment, top_n=0, metadata copies,
reranker_kwargs, precision. Each test failed on the postprocessor before these fixes."""

from __future__ import annotations

import asyncio
import threading
from typing import List

import pytest
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

from crossrank import Reranker

QUERY = "what do giant pandas eat?"
PASSAGES = [
    "the weather in paris is rain and cloud",
    "giant pandas eat bamboo in china",
    "python is a language for code",
    "the black and white bear is a panda",
    "a cat and a dog in the city",
]


def make_nodes(**metadata) -> List[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=text, id_=f"node-{i}", metadata={"n": [i], **metadata}),
            score=1.0 - i / 10,
        )
        for i, text in enumerate(PASSAGES)
    ]


def ids(nodes: List[NodeWithScore]) -> List[str]:
    return [item.node.node_id for item in nodes]


def test_a_generator_of_nodes_is_reranked_not_lost(reranker):
    post = CrossRankRerank(reranker=reranker, top_n=None)
    expected = ids(post.postprocess_nodes(make_nodes(), query_str=QUERY))
    assert len(expected) == len(PASSAGES)
    assert ids(post.postprocess_nodes((n for n in make_nodes()), query_str=QUERY)) == expected
    assert (
        ids(asyncio.run(post.apostprocess_nodes(iter(make_nodes()), query_str=QUERY))) == expected
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (None, "nodes must be an iterable of NodeWithScore, got NoneType"),
        ("some text", "nodes must be an iterable of NodeWithScore, got str"),
        (["some text"], r"nodes\[0\] is str, expected NodeWithScore"),
        ([TextNode(text="a panda")], r"nodes\[0\] is TextNode, expected NodeWithScore \(wrap it"),
    ],
)
def test_bad_nodes_are_a_type_error_naming_nodes(reranker, bad, message):
    post = CrossRankRerank(reranker=reranker)
    with pytest.raises(TypeError, match=message):
        post.postprocess_nodes(bad, query_str=QUERY)
    with pytest.raises(TypeError, match=message):
        asyncio.run(post.apostprocess_nodes(bad, query_str=QUERY))


def test_fields_are_validated_on_assignment(reranker):
    post = CrossRankRerank(reranker=reranker)
    for field, value in (("top_n", -10), ("batch_size", 0), ("score_threshold", 2.0)):
        with pytest.raises(ValidationError, match=field):
            setattr(post, field, value)
    post.top_n = 2
    assert len(post.postprocess_nodes(make_nodes(), query_str=QUERY)) == 2


def test_fields_that_choose_the_model_are_frozen(reranker, cross_encoder_dir):
    post = CrossRankRerank(reranker=reranker)
    for field, value in (("model", cross_encoder_dir), ("device", "cpu"), ("dtype", "bfloat16")):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(post, field, value)


def test_top_n_zero_is_one_rule_with_the_core(reranker):
    assert reranker.rank(QUERY, PASSAGES, top_k=0) == []
    assert (
        CrossRankRerank(reranker=reranker, top_n=0).postprocess_nodes(make_nodes(), query_str=QUERY)
        == []
    )
    post = CrossRankRerank(reranker=reranker)
    post.top_n = 0
    assert post.postprocess_nodes(make_nodes(), query_str=QUERY) == []


def test_unpicklable_metadata_is_shared_the_rest_copied(reranker, tmp_path):
    lock = threading.Lock()
    with open(tmp_path / "source.txt", "w") as handle:
        nodes = make_nodes(lock=lock, file=handle)
        post = CrossRankRerank(reranker=reranker, top_n=None, keep_retrieval_score=True)
        out = post.postprocess_nodes(nodes, query_str=QUERY)
    texts = [item.node.get_content(metadata_mode=post.metadata_mode) for item in nodes]
    assert ids(out) == [nodes[hit.index].node.node_id for hit in reranker.rank(QUERY, texts)]
    originals = {item.node.node_id: item.node for item in nodes}
    for item in out:
        original = originals[item.node.node_id]
        assert item.node is not original
        assert item.node.metadata["lock"] is lock and item.node.metadata["file"] is handle
        item.node.metadata["n"].append(99)
        item.node.excluded_llm_metadata_keys.append("n")
        assert "retrieval_score" in item.node.metadata
    assert all(
        99 not in n.node.metadata["n"] and "retrieval_score" not in n.node.metadata for n in nodes
    )
    assert all(n.node.excluded_llm_metadata_keys == [] for n in nodes)


def test_precision_is_reported_as_a_dtype(cross_encoder_dir):
    bf16 = Reranker(cross_encoder_dir, device="cpu", max_length=128, dtype="bfloat16")
    post = CrossRankRerank(reranker=bf16)
    assert post.dtype == "bfloat16" and post.use_fp16 is None  # was use_fp16=True before
    rebuilt = CrossRankRerank.from_dict(post.to_dict())
    assert rebuilt.reranker is not bf16 and rebuilt.reranker.dtype == bf16.dtype
    own = CrossRankRerank(cross_encoder_dir, device="cpu", max_length=128)
    assert own.dtype == "float32" and own.to_dict()["dtype"] == "float32"


def test_reranker_kwargs_reach_the_reranker(cross_encoder_dir):
    long_nodes = [
        NodeWithScore(node=TextNode(text=" ".join([text] * 40), id_=f"long-{i}"))
        for i, text in enumerate(PASSAGES)
    ]
    options = {"long_documents": "maxp", "stride": 16}
    post = CrossRankRerank(
        cross_encoder_dir, device="cpu", max_length=64, top_n=None, reranker_kwargs=options
    )
    direct = Reranker(cross_encoder_dir, device="cpu", max_length=64, **options)
    texts = [item.node.get_content(metadata_mode=post.metadata_mode) for item in long_nodes]
    expected = direct.rank(QUERY, texts)
    out = post.postprocess_nodes(long_nodes, query_str=QUERY)
    assert ids(out) == [long_nodes[h.index].node.node_id for h in expected]
    assert [n.score for n in out] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert CrossRankRerank.from_dict(post.to_dict()).reranker.long_documents == "maxp"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"reranker_kwargs": {"no_such_option": 1}},
            ValueError,
            r"reranker_kwargs\['no_such_option'\] is not",
        ),
        (
            {"reranker_kwargs": {"dtype": "bfloat16"}, "dtype": "float32"},
            ValueError,
            r"dtype is given twice, as dtype='float32' and as reranker_kwargs\['dtype'\]",
        ),
        ({"reranker_kwargs": ["backend"]}, TypeError, "reranker_kwargs must be a dict"),
    ],
)
def test_bad_reranker_kwargs_name_the_key(cross_encoder_dir, kwargs, error, message):
    with pytest.raises(error, match=message):
        CrossRankRerank(cross_encoder_dir, **kwargs)


def test_min_keep_is_passed_to_the_core(reranker):
    for top_n, min_keep in ((None, 2), (1, 3), (None, 0)):
        expected = reranker.rank(
            QUERY,
            [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in make_nodes()],
            top_k=top_n,
            threshold=1.0,
            min_keep=min_keep,
        )
        assert len(expected) == (min_keep if top_n is None else min(top_n, min_keep))
        post = CrossRankRerank(
            reranker=reranker, top_n=top_n, score_threshold=1.0, min_keep=min_keep
        )
        out = post.postprocess_nodes(make_nodes(), query_str=QUERY)
        assert ids(out) == [f"node-{h.index}" for h in expected]
        assert CrossRankRerank.from_dict(post.to_dict()).min_keep == min_keep
    with pytest.raises(ValidationError, match="min_keep"):
        post.min_keep = -1


def test_load_options_in_reranker_kwargs_land_in_their_fields(cross_encoder_dir):
    options = {"dtype": "bfloat16", "cache_size": 4}
    post = CrossRankRerank(cross_encoder_dir, max_length=128, reranker_kwargs=options)
    assert options == {"dtype": "bfloat16", "cache_size": 4}  # the caller's dict is not changed
    assert post.dtype == "bfloat16" and post.reranker_kwargs == {"cache_size": 4}
    rebuilt = CrossRankRerank.from_dict(post.to_dict())
    assert rebuilt.reranker.dtype == post.reranker.dtype and rebuilt.dtype == "bfloat16"
