"""CrossRankRerank on its own: ranking, selection, copies, events, async, sharing, errors."""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path
from typing import Any, List

import pytest
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank

from crossrank import Reranker

QUERY = "what do giant pandas eat?"
PASSAGES = [
    "the weather in paris is rain and cloud",
    "giant pandas eat bamboo in china",
    "python is a language for code",
    "the black and white bear is a panda",
    "a cat and a dog in the city",
    "rerank the passage for the query",
]


def make_nodes() -> List[NodeWithScore]:
    """Retrieved nodes with retriever scores and metadata, one of it hidden from the embed text."""
    return [
        NodeWithScore(
            node=TextNode(
                text=text,
                id_=f"node-{i}",
                metadata={"title": f"doc {i}", "tags": ["animal"] if "panda" in text else []},
                excluded_embed_metadata_keys=["tags"],
            ),
            score=1.0 - i / 10,
        )
        for i, text in enumerate(PASSAGES)
    ]


def ids(nodes: List[NodeWithScore]) -> List[str]:
    return [item.node.node_id for item in nodes]


def texts(nodes: List[NodeWithScore], mode: MetadataMode = MetadataMode.EMBED) -> List[str]:
    return [item.node.get_content(metadata_mode=mode) for item in nodes]


def expected_ids(reranker: Reranker, nodes, **rank_kwargs) -> List[str]:
    return [
        nodes[hit.index].node.node_id for hit in reranker.rank(QUERY, texts(nodes), **rank_kwargs)
    ]


# ---------------------------------------------------------------------- ranking and selection


def test_order_and_scores_equal_reranker_rank(reranker):
    nodes = make_nodes()
    hits = reranker.rank(QUERY, texts(nodes))
    out = CrossRankRerank(reranker=reranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert ids(out) == [nodes[hit.index].node.node_id for hit in hits]
    assert [item.score for item in out] == pytest.approx([hit.score for hit in hits], abs=1e-6)
    assert ids(out) != ids(nodes), "the tiny model should reorder these nodes"
    assert all(0.0 < item.score < 1.0 for item in out)  # sigmoid scores, not retriever scores


def test_metadata_mode_chooses_the_text_scored(reranker):
    nodes = make_nodes()
    embed_texts, raw_texts = texts(nodes), texts(nodes, MetadataMode.NONE)
    assert "title: doc 1" in embed_texts[1] and "tags" not in embed_texts[1]
    embed = CrossRankRerank(reranker=reranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    raw = CrossRankRerank(
        reranker=reranker, top_n=None, metadata_mode=MetadataMode.NONE
    ).postprocess_nodes(nodes, query_str=QUERY)
    embed_scores = {item.node.node_id: item.score for item in embed}
    raw_scores = {item.node.node_id: item.score for item in raw}
    for scores, scored_texts in ((embed_scores, embed_texts), (raw_scores, raw_texts)):
        expected = {ids(nodes)[hit.index]: hit.score for hit in reranker.rank(QUERY, scored_texts)}
        assert scores == pytest.approx(expected, abs=1e-6)
    assert embed_scores != pytest.approx(raw_scores), "metadata in the text must change scores"


def test_top_n_keeps_the_best(reranker):
    nodes = make_nodes()
    out = CrossRankRerank(reranker=reranker, top_n=2).postprocess_nodes(nodes, query_str=QUERY)
    assert ids(out) == expected_ids(reranker, nodes)[:2]


def test_threshold_then_top_n(reranker):
    nodes = make_nodes()
    scores = [hit.score for hit in reranker.rank(QUERY, texts(nodes))]
    threshold = (scores[2] + scores[3]) / 2  # exactly three nodes score above it
    kept = CrossRankRerank(reranker=reranker, top_n=None, score_threshold=threshold)
    assert ids(kept.postprocess_nodes(nodes, query_str=QUERY)) == expected_ids(reranker, nodes)[:3]
    both = CrossRankRerank(reranker=reranker, top_n=2, score_threshold=threshold)
    assert ids(both.postprocess_nodes(nodes, query_str=QUERY)) == expected_ids(reranker, nodes)[:2]
    loose = CrossRankRerank(reranker=reranker, top_n=5, score_threshold=threshold)
    assert len(loose.postprocess_nodes(nodes, query_str=QUERY)) == 3  # threshold binds first
    strict = CrossRankRerank(reranker=reranker, score_threshold=1.0)
    assert strict.postprocess_nodes(nodes, query_str=QUERY) == []


def test_query_bundle_and_query_str_agree(reranker):
    nodes = make_nodes()
    post = CrossRankRerank(reranker=reranker)
    by_bundle = post.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    by_str = post.postprocess_nodes(nodes, query_str=QUERY)
    assert ids(by_bundle) == ids(by_str)


def test_empty_nodes_give_empty_list(reranker):
    assert CrossRankRerank(reranker=reranker).postprocess_nodes([], query_str=QUERY) == []


# ---------------------------------------------------------------------- copies, never mutation


def test_keep_retrieval_score_goes_on_the_new_nodes(reranker):
    nodes = make_nodes()
    retrieval = {item.node.node_id: item.score for item in nodes}
    out = CrossRankRerank(reranker=reranker, top_n=3, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert len(out) == 3
    for item in out:
        assert item.node.metadata["retrieval_score"] == retrieval[item.node.node_id]
        assert item.score != retrieval[item.node.node_id]
    assert all("retrieval_score" not in item.node.metadata for item in nodes)
    plain = CrossRankRerank(reranker=reranker, top_n=3).postprocess_nodes(nodes, query_str=QUERY)
    assert all("retrieval_score" not in item.node.metadata for item in plain)


def test_input_nodes_and_metadata_are_untouched(reranker):
    nodes = make_nodes()
    before = copy.deepcopy(nodes)
    node_objects = [item.node for item in nodes]
    post = CrossRankRerank(reranker=reranker, top_n=None, keep_retrieval_score=True)
    out = post.postprocess_nodes(nodes, query_str=QUERY)
    assert [item.model_dump() for item in nodes] == [item.model_dump() for item in before]
    assert [item.node for item in nodes] == node_objects
    originals = {item.node.node_id: item for item in nodes}
    for item in out:
        original = originals[item.node.node_id]
        assert item is not original and item.node is not original.node
        assert item.node.metadata is not original.node.metadata
        assert item.node.get_content() == original.node.get_content()
        # What a later postprocessor does to the results must not reach the caller's nodes.
        item.node.metadata["tags"].append("edited")
        item.node.excluded_llm_metadata_keys.append("title")
    assert [item.model_dump() for item in nodes] == [item.model_dump() for item in before]


# ---------------------------------------------------------------------- events


def test_reranking_callback_event(reranker):
    handler = LlamaDebugHandler(print_trace_on_end=False)
    post = CrossRankRerank(reranker=reranker, top_n=2, callback_manager=CallbackManager([handler]))
    nodes = make_nodes()
    out = post.postprocess_nodes(nodes, query_str=QUERY)
    pairs = handler.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    start, end = pairs[0]
    assert start.payload[EventPayload.NODES] is nodes
    assert start.payload[EventPayload.MODEL_NAME] == reranker.model_name
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert start.payload[EventPayload.TOP_K] == 2
    assert end.payload[EventPayload.NODES] == out


class _Recorder(BaseEventHandler):
    events: List[Any] = []

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


@pytest.fixture
def recorder():
    root = get_dispatcher()
    handler = _Recorder(events=[])
    root.add_event_handler(handler)
    yield handler
    root.event_handlers = [h for h in root.event_handlers if h is not handler]


def test_rerank_instrumentation_events(reranker, recorder):
    nodes = make_nodes()
    out = CrossRankRerank(reranker=reranker, top_n=2).postprocess_nodes(nodes, query_str=QUERY)
    assert [type(event) for event in recorder.events] == [ReRankStartEvent, ReRankEndEvent]
    start, end = recorder.events
    assert start.query.query_str == QUERY
    assert ids(start.nodes) == ids(nodes)
    assert start.top_n == 2
    assert start.model_name == reranker.model_name
    assert ids(end.nodes) == ids(out) and [n.score for n in end.nodes] == [n.score for n in out]


def test_start_event_top_n_counts_all_nodes_when_unlimited(reranker, recorder):
    nodes = make_nodes()
    CrossRankRerank(reranker=reranker, top_n=None).postprocess_nodes(nodes, query_str=QUERY)
    assert recorder.events[0].top_n == len(nodes)


# ---------------------------------------------------------------------- async


class _GatedReranker(Reranker):
    """A real Reranker whose rank() first waits for a coroutine on the event loop to open a gate.

    If scoring ran on the event loop, that coroutine could not run and the wait would time out.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate_opened_first = None
        self.thread = None

    def rank(self, *args, **kwargs):
        self.thread = threading.get_ident()
        self.gate_opened_first = self.gate.wait(timeout=30)
        return super().rank(*args, **kwargs)


def test_async_scores_off_the_event_loop(cross_encoder_dir, reranker):
    gated = _GatedReranker(cross_encoder_dir, device="cpu", max_length=128)
    post = CrossRankRerank(reranker=gated, top_n=3)
    nodes = make_nodes()
    ticks = []

    async def other_work():
        for _ in range(3):
            await asyncio.sleep(0.01)
            ticks.append(threading.get_ident())
        gated.gate.set()

    async def main():
        results = await asyncio.gather(
            post.apostprocess_nodes(nodes, query_str=QUERY), other_work()
        )
        return results[0], threading.get_ident()

    out, loop_thread = asyncio.run(main())
    assert gated.gate_opened_first is True, "the event loop was blocked while reranking"
    assert gated.thread != loop_thread and len(ticks) == 3
    assert ids(out) == expected_ids(reranker, nodes, top_k=3)


def test_async_rejects_query_str_with_query_bundle(reranker):
    post = CrossRankRerank(reranker=reranker)
    with pytest.raises(ValueError, match="not both"):
        asyncio.run(post.apostprocess_nodes(make_nodes(), QueryBundle(QUERY), query_str=QUERY))


# ---------------------------------------------------------------------- construction and sharing


def test_shared_reranker_is_used_as_is(reranker):
    first = CrossRankRerank(reranker=reranker, top_n=2)
    second = CrossRankRerank(reranker=reranker, top_n=4, batch_size=2)
    assert first.reranker is reranker and second.reranker is reranker
    assert first.model == reranker.model_name and first.device == "cpu"
    assert first.max_length == reranker.max_length == 128
    nodes = make_nodes()
    assert ids(first.postprocess_nodes(nodes, query_str=QUERY)) == expected_ids(reranker, nodes)[:2]
    assert (
        ids(second.postprocess_nodes(nodes, query_str=QUERY)) == expected_ids(reranker, nodes)[:4]
    )


def test_model_path_loads_and_round_trips(cross_encoder_dir, reranker):
    post = CrossRankRerank(Path(cross_encoder_dir), device="cpu", max_length=64, top_n=2)
    assert isinstance(post, BaseNodePostprocessor) and post.class_name() == "CrossRankRerank"
    assert post.reranker is not reranker and post.reranker.max_length == 64
    data = post.to_dict()
    assert data["class_name"] == "CrossRankRerank" and data["model"] == cross_encoder_dir
    rebuilt = CrossRankRerank.from_dict(data)
    nodes = make_nodes()
    assert ids(rebuilt.postprocess_nodes(nodes, query_str=QUERY)) == ids(
        post.postprocess_nodes(nodes, query_str=QUERY)
    )


def test_missing_query_is_a_clear_error(reranker):
    post = CrossRankRerank(reranker=reranker)
    with pytest.raises(ValueError, match="query_bundle"):
        post.postprocess_nodes(make_nodes())
    with pytest.raises(ValueError, match="query_bundle"):
        asyncio.run(post.apostprocess_nodes(make_nodes()))
    with pytest.raises(ValueError, match="query is empty"):
        post.postprocess_nodes(make_nodes(), query_str="  ")


def test_model_and_reranker_together_are_refused(cross_encoder_dir, reranker):
    with pytest.raises(ValueError, match="either model= .* or reranker="):
        CrossRankRerank(cross_encoder_dir, reranker=reranker)
    with pytest.raises(ValueError, match="device, use_fp16 configure loading a model"):
        CrossRankRerank(reranker=reranker, device="cpu", use_fp16=False)
    with pytest.raises(TypeError, match="reranker must be a crossrank.Reranker, got str"):
        CrossRankRerank(reranker=cross_encoder_dir)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"top_n": -1}, "top_n"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_name_the_field(reranker, kwargs, field):
    with pytest.raises(ValidationError, match=field):
        CrossRankRerank(reranker=reranker, **kwargs)
