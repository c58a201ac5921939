"""CrossRankRerank(base_url=...) against a real crossrank server: the local compressor's results."""

from __future__ import annotations

import asyncio
import copy
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_crossrank import CrossRankRerank, RemoteRerankError
from pydantic import ValidationError

QUERY = "what do giant pandas eat"
KEY = "test-key"


def summary(documents):
    return [
        (d.id, d.page_content, {k: v for k, v in d.metadata.items() if k != "relevance_score"})
        for d in documents
    ]


def scores(documents):
    return [d.metadata["relevance_score"] for d in documents]


def assert_same(remote, local):
    assert summary(remote) == summary(local)
    assert scores(remote) == pytest.approx(scores(local), abs=1e-6)


@pytest.mark.parametrize(
    "selection",
    [
        {"top_n": None},
        {"top_n": 3},
        {"top_n": 0},
        {"top_n": 2, "score_threshold": 0.5},
        {"top_n": None, "score_threshold": 0.55},
        {"top_n": None, "score_threshold": 1.0, "min_keep": 2},
        {"top_n": 1, "score_threshold": 1.0, "min_keep": 3},
    ],
)
def test_remote_equals_local(server_url, reranker, documents, selection):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, **selection)
    local = CrossRankRerank(reranker=reranker, **selection)
    assert remote.reranker is None and remote.model is None  # nothing loaded here
    expected = local.compress_documents(documents, QUERY)
    assert_same(remote.compress_documents(documents, QUERY), expected)
    assert_same(asyncio.run(remote.acompress_documents(documents, QUERY)), expected)


def test_threshold_selects_a_proper_subset(server_url, reranker, documents):
    everything = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(documents, QUERY)
    middle = scores(everything)[3]
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=None, score_threshold=middle)
    kept = remote.compress_documents(documents, QUERY)
    assert [d.id for d in kept] == [d.id for d in everything[:4]]


def test_remote_never_mutates_the_documents(server_url, documents):
    before = [(d.page_content, d.id, copy.deepcopy(d.metadata)) for d in documents]
    result = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=None).compress_documents(
        documents, QUERY
    )
    for doc in result:
        doc.metadata["tags"].append("changed")
    assert [(d.page_content, d.id, d.metadata) for d in documents] == before


class NoThreads(ThreadPoolExecutor):
    def submit(self, *args, **kwargs):
        raise AssertionError("the remote async path used a worker thread")


def test_async_is_real_async_io_not_a_thread(server_url, reranker, documents):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=4)
    queries = [QUERY, "paris france", "python code", "bamboo", "blue sky rain", "bear"]

    async def main():
        asyncio.get_running_loop().set_default_executor(NoThreads())
        return await asyncio.gather(*(remote.acompress_documents(documents, q) for q in queries))

    results = asyncio.run(main())
    for query, result in zip(queries, results):
        assert_same(
            result, CrossRankRerank(reranker=reranker, top_n=4).compress_documents(documents, query)
        )
    # The local compressor does need the thread: the guard above is what tells the two apart.
    with pytest.raises(AssertionError, match="worker thread"):

        async def local():
            asyncio.get_running_loop().set_default_executor(NoThreads())
            await CrossRankRerank(reranker=reranker).acompress_documents(documents, QUERY)

        asyncio.run(local())


def test_concurrent_threads_get_their_own_results(server_url, reranker, documents):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=3)
    queries = [QUERY, "paris france", "python code", "bamboo", "blue sky rain", "bear"] * 2
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda q: remote.compress_documents(documents, q), queries))
    local = CrossRankRerank(reranker=reranker, top_n=3)
    for query, result in zip(queries, results):
        assert_same(result, local.compress_documents(documents, query))


def test_empty_inputs_and_bad_query(server_url, documents):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY)
    assert remote.compress_documents([], QUERY) == []
    with pytest.raises(ValueError, match="query is empty"):
        remote.compress_documents(documents, "  ")


def test_wrong_api_key_is_a_clear_error(server_url, documents):
    remote = CrossRankRerank(base_url=server_url, api_key="wrong")
    with pytest.raises(RemoteRerankError, match=r"answered 401 .*api_key="):
        remote.compress_documents(documents, QUERY)


def test_api_key_from_the_environment_and_never_dumped(
    server_url, reranker, documents, monkeypatch
):
    monkeypatch.setenv("CROSSRANK_API_KEY", KEY)
    remote = CrossRankRerank(base_url=server_url, top_n=2)
    assert_same(
        remote.compress_documents(documents, QUERY),
        CrossRankRerank(reranker=reranker, top_n=2).compress_documents(documents, QUERY),
    )
    keyed = CrossRankRerank(base_url=server_url, api_key=KEY)
    assert KEY not in keyed.model_dump_json() and KEY not in repr(keyed)
    assert (
        CrossRankRerank(**keyed.model_dump()).base_url == server_url
    )  # round-trips (key from env)


def test_service_down_names_the_url(documents):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # released below: nothing listens
    remote = CrossRankRerank(base_url=url, timeout=5)
    with pytest.raises(
        RemoteRerankError, match=f"cannot reach the crossrank server at {url}/v1/rerank"
    ):
        remote.compress_documents(documents, QUERY)
    with pytest.raises(RemoteRerankError, match=f"cannot reach the crossrank server at {url}"):
        asyncio.run(remote.acompress_documents(documents, QUERY))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device": "cpu"}, "device configure loading a model .* base_url="),
        ({"reranker_kwargs": {"cache_size": 8}}, "reranker_kwargs configure loading .* base_url="),
        ({"batch_size": 8}, "batch_size is chosen by the server"),
        ({"base_url": "localhost:8080"}, "base_url must be an http"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_remote_configuration_errors_name_the_field(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        CrossRankRerank(**{"base_url": "http://127.0.0.1:9", **kwargs})


def test_reranker_and_base_url_together_are_refused(reranker):
    with pytest.raises(ValidationError, match="either reranker= .* or base_url="):
        CrossRankRerank(reranker=reranker, base_url="http://127.0.0.1:9")
    with pytest.raises(ValidationError, match="api_key is only used with base_url="):
        CrossRankRerank(reranker=reranker, api_key="k")


def test_a_shared_remote_scorer_works_like_base_url(server_url, reranker, documents, monkeypatch):
    from crossrank.client.remote import RemoteReranker

    shared = RemoteReranker(server_url, api_key=KEY)
    compressor = CrossRankRerank(reranker=shared, top_n=3)
    assert compressor.reranker is shared and compressor.base_url == server_url.rstrip("/")
    expected = CrossRankRerank(reranker=reranker, top_n=3).compress_documents(documents, QUERY)
    assert_same(compressor.compress_documents(documents, QUERY), expected)
    assert_same(asyncio.run(compressor.acompress_documents(documents, QUERY)), expected)
    monkeypatch.setenv("CROSSRANK_API_KEY", KEY)  # the key is never dumped: a rebuilt one reads it
    rebuilt = CrossRankRerank(**compressor.model_dump())
    assert rebuilt.reranker is None and rebuilt.base_url == compressor.base_url
    assert_same(rebuilt.compress_documents(documents, QUERY), expected)


def test_cross_encoder_scores_on_the_server(server_url, reranker):
    from langchain_crossrank import CrossRankCrossEncoder

    pairs = [(QUERY, "giant pandas eat bamboo"), ("paris", "paris is in france"), (QUERY, "rain")]
    local = CrossRankCrossEncoder(reranker=reranker)
    for normalize in (False, True):
        remote = CrossRankCrossEncoder(base_url=server_url, api_key=KEY, normalize=normalize)
        local.normalize = normalize
        assert remote.reranker is None
        assert remote.score(pairs) == pytest.approx(local.score(pairs), abs=1e-5)
    with pytest.raises(ValidationError, match="batch_size is chosen by the server"):
        CrossRankCrossEncoder(base_url=server_url, batch_size=4)
