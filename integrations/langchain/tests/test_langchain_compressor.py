"""CrossRankRerank against crossrank's own Reranker.rank on tiny local cross-encoders."""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_crossrank import CrossRankRerank
from pydantic import ValidationError

import crossrank.reranker
from crossrank import Reranker

QUERY = "what do giant pandas eat"


def snapshot(documents):
    """Everything a caller could observe about the documents, deep-copied."""
    return [(d.page_content, d.id, copy.deepcopy(d.metadata), type(d)) for d in documents]


def test_is_a_document_compressor(reranker):
    assert isinstance(CrossRankRerank(reranker=reranker), BaseDocumentCompressor)


def test_order_and_scores_equal_reranker_rank(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker, top_n=None)
    result = compressor.compress_documents(documents, QUERY)
    expected = reranker.rank(QUERY, [d.page_content for d in documents])

    assert [d.id for d in result] == [documents[h.index].id for h in expected]
    assert [d.metadata["relevance_score"] for d in result] == [h.score for h in expected]
    scores = [d.metadata["relevance_score"] for d in result]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)
    # The tiny model must actually reorder, or this test would not say much.
    assert [d.id for d in result] != [d.id for d in documents]


def test_loading_by_model_path_gives_the_same_result(bert_dir, reranker, documents):
    by_path = CrossRankRerank(model=bert_dir, device="cpu", max_length=128, top_n=None)
    shared = CrossRankRerank(reranker=reranker, top_n=None)
    assert by_path.compress_documents(documents, QUERY) == shared.compress_documents(
        documents, QUERY
    )


def test_top_n_keeps_the_best(reranker, documents):
    full = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    top3 = CrossRankRerank(reranker=reranker).compress_documents(documents, QUERY)
    assert len(top3) == 3  # the default top_n
    assert top3 == full[:3]
    assert (
        CrossRankRerank(reranker=reranker, top_n=100).compress_documents(documents, QUERY) == full
    )


def test_threshold_then_top_n(reranker, documents):
    full = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    scores = [d.metadata["relevance_score"] for d in full]
    threshold = scores[4]  # keeps exactly the five best (scores are distinct)
    assert len(set(scores)) == len(scores)

    kept = CrossRankRerank(
        reranker=reranker, top_n=None, score_threshold=threshold
    ).compress_documents(documents, QUERY)
    assert kept == full[:5]
    assert all(d.metadata["relevance_score"] >= threshold for d in kept)

    # threshold first, then top_n: top_n smaller than what the threshold keeps wins ...
    both = CrossRankRerank(reranker=reranker, top_n=2, score_threshold=threshold)
    assert both.compress_documents(documents, QUERY) == full[:2]
    # ... and a threshold stricter than top_n leaves fewer than top_n
    strict = CrossRankRerank(reranker=reranker, top_n=4, score_threshold=scores[1])
    assert strict.compress_documents(documents, QUERY) == full[:2]
    # a threshold above every score keeps nothing
    none_left = CrossRankRerank(reranker=reranker, top_n=None, score_threshold=1.0)
    assert none_left.compress_documents(documents, QUERY) == []


def test_metadata_id_and_content_kept_plus_score(reranker, documents):
    result = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    by_id = {d.id: d for d in documents}
    assert sorted(d.id for d in result) == sorted(by_id)
    for doc in result:
        original = by_id[doc.id]
        assert type(doc) is Document
        assert doc.page_content == original.page_content
        assert doc.metadata == {
            **original.metadata,
            "relevance_score": doc.metadata["relevance_score"],
        }
        assert isinstance(doc.metadata["relevance_score"], float)


def test_inputs_are_never_mutated(reranker, documents):
    before = snapshot(documents)
    metadata_objects = [d.metadata for d in documents]
    result = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)

    assert snapshot(documents) == before
    assert all("relevance_score" not in d.metadata for d in documents)
    # New objects all the way down: changing a result leaves the caller's documents alone.
    for doc in result:
        assert all(doc is not d for d in documents)
        assert all(doc.metadata is not m for m in metadata_objects)
        doc.metadata["tags"].append("changed")
        doc.metadata["extra"]["pos"] = -1
    assert snapshot(documents) == before


def test_empty_documents_give_empty_list(reranker):
    compressor = CrossRankRerank(reranker=reranker)
    assert compressor.compress_documents([], QUERY) == []
    assert asyncio.run(compressor.acompress_documents([], QUERY)) == []


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query_is_a_clear_error(reranker, documents, query):
    compressor = CrossRankRerank(reranker=reranker)
    with pytest.raises(ValueError, match="query is empty"):
        compressor.compress_documents(documents, query)


def test_empty_page_content_is_scored_not_dropped(reranker, documents):
    result = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    empty = [d for d in result if d.page_content == ""]
    assert len(empty) == 1 and empty[0].id == "doc-4"
    assert empty[0].metadata["relevance_score"] == pytest.approx(
        reranker.compute_score([QUERY, ""], normalize=True)
    )


def test_model_dump_is_config_without_the_model(reranker, bert_dir):
    compressor = CrossRankRerank(
        model=bert_dir, device="cpu", max_length=128, dtype="float32", top_n=5, score_threshold=0.2
    )
    dump = compressor.model_dump()
    assert dump == {
        "model": bert_dir,
        "reranker_kwargs": None,
        "top_n": 5,
        "score_threshold": 0.2,
        "min_keep": 0,
        "batch_size": None,
        "fusion": None,
        "fusion_weight": 0.5,
        "score_key": "score",
        "max_length": 128,
        "device": "cpu",
        "use_fp16": None,
        "dtype": "float32",
        "base_url": None,
        "timeout": 60.0,
    }
    assert '"reranker":' not in compressor.model_dump_json()
    # Options the caller left at their defaults stay portable (None, not the device picked here).
    assert CrossRankRerank(model=bert_dir, max_length=128).model_dump()["device"] is None
    # A shared reranker is described by its model, so the dump rebuilds an equivalent compressor.
    shared_dump = CrossRankRerank(reranker=reranker, top_n=5, score_threshold=0.2).model_dump()
    assert shared_dump == dump
    rebuilt = CrossRankRerank(**dump)
    assert rebuilt.reranker is not reranker
    assert rebuilt.reranker.model_name == bert_dir


def test_shared_reranker_is_used_not_reloaded(reranker, bert_dir, documents, monkeypatch):
    loads = []
    real_load = crossrank.reranker.open_checkpoint

    def counting_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(crossrank.reranker, "open_checkpoint", counting_load)

    shared = CrossRankRerank(reranker=reranker)
    assert shared.reranker is reranker
    for _ in range(3):
        shared.compress_documents(documents, QUERY)
    asyncio.run(shared.acompress_documents(documents, QUERY))
    assert loads == []

    own = CrossRankRerank(model=bert_dir, device="cpu", max_length=128)
    for _ in range(3):
        own.compress_documents(documents, QUERY)
    assert len(loads) == 1  # loaded once, at construction, never per call


def test_default_model_when_neither_is_given(monkeypatch):
    seen = []

    class Recording(Reranker):
        def __init__(self, model, **kwargs):  # records what would be loaded, loads nothing
            seen.append((model, kwargs))
            raise RuntimeError("stop before loading")

    # The wrappers build their Reranker through the core's one construction rule.
    monkeypatch.setattr("crossrank.reranker.Reranker", Recording)
    with pytest.raises(RuntimeError, match="stop before loading"):
        CrossRankRerank()
    assert seen == [(crossrank.DEFAULT_MODEL, {})]  # Reranker's own defaults for the rest


def test_model_and_reranker_together_is_an_error(reranker, bert_dir):
    with pytest.raises(ValidationError, match="either model= .* or reranker="):
        CrossRankRerank(model=bert_dir, reranker=reranker)
    with pytest.raises(ValidationError, match="max_length, device .*reranker="):
        CrossRankRerank(reranker=reranker, max_length=128, device="cpu")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"top_n": -1}, "top_n"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"batch_size": 0}, "batch_size"),
        ({"not_an_option": 1}, "not_an_option"),
        ({"reranker": "a string"}, "reranker"),
    ],
)
def test_bad_config_names_the_field(reranker, kwargs, field):
    kwargs = {"reranker": reranker, **kwargs}
    with pytest.raises(ValidationError, match=field):
        CrossRankRerank(**kwargs)


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(crossrank.ModelLoadError, match="no such directory"):
        CrossRankRerank(model=str(tmp_path / "nowhere"), device="cpu")


def test_batch_size_does_not_change_results(reranker, documents):
    base = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    small = CrossRankRerank(reranker=reranker, top_n=None, batch_size=1)
    result = small.compress_documents(documents, QUERY)
    assert [d.id for d in result] == [d.id for d in base]
    for a, b in zip(result, base):
        assert a.metadata["relevance_score"] == pytest.approx(
            b.metadata["relevance_score"], abs=1e-5
        )


def test_concurrent_calls_match_sequential(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker, top_n=None)
    queries = [QUERY, "paris france", "python code", "bamboo", "blue sky rain", "bear"] * 4
    sequential = [compressor.compress_documents(documents, q) for q in queries]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(lambda q: compressor.compress_documents(documents, q), queries))
    assert concurrent == sequential


def test_async_matches_sync(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker, top_n=4, score_threshold=0.01)
    before = snapshot(documents)
    result = asyncio.run(compressor.acompress_documents(documents, QUERY))
    assert result == compressor.compress_documents(documents, QUERY)
    assert snapshot(documents) == before


def _ticks_while(make_rerank):
    """How often another coroutine got to run while the rerank coroutine was in progress."""

    async def main():
        ticks = 0
        task = asyncio.create_task(make_rerank())
        while not task.done():
            await asyncio.sleep(0)
            ticks += 1
        return ticks, task.result()

    return asyncio.run(main())


def test_async_rerank_does_not_block_the_event_loop(reranker):
    # Enough long documents that scoring takes many event-loop turns.
    many = [
        Document(page_content=" ".join(["the giant panda eats bamboo in china"] * 8) + f" {i}")
        for i in range(400)
    ]
    compressor = CrossRankRerank(reranker=reranker, top_n=None)

    async def off_loop():
        return await compressor.acompress_documents(many, QUERY)

    async def on_loop():  # the blocking way: scoring inside the coroutine itself
        return compressor.compress_documents(many, QUERY)

    ticks, result = _ticks_while(off_loop)
    blocked_ticks, blocked_result = _ticks_while(on_loop)
    assert result == blocked_result
    assert len(result) == len(many)
    # Scoring on the loop lets the other coroutine run at most once (before the task starts);
    # scoring in a thread lets it run all along.
    assert blocked_ticks <= 2
    assert ticks >= 20, ticks


def test_concurrent_async_calls_match_sequential(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker, top_n=3)
    queries = [QUERY, "paris france", "python code", "bamboo", "blue sky rain", "bear"]

    async def main():
        return await asyncio.gather(
            *(compressor.acompress_documents(documents, q) for q in queries)
        )

    assert asyncio.run(main()) == [compressor.compress_documents(documents, q) for q in queries]
