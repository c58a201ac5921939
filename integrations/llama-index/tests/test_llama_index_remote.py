"""CrossRankRerank(base_url=...) against a real crossrank server: the local postprocessor's results."""

from __future__ import annotations

import asyncio
import copy
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.postprocessor.crossrank import CrossRankRerank, RemoteRerankError

QUERY = "what do giant pandas eat?"
KEY = "test-key"
PASSAGES = [
    "the weather in paris is rain and cloud",
    "giant pandas eat bamboo in china",
    "python is a language for code",
    "the black and white bear is a panda",
    "a cat and a dog in the city",
    "rerank the passage for the query",
]


def make_nodes() -> List[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(
                text=text, id_=f"node-{i}", metadata={"title": f"doc {i}", "tags": ["x"]}
            ),
            score=1.0 - i / 10,
        )
        for i, text in enumerate(PASSAGES)
    ]


def assert_same(remote: List[NodeWithScore], local: List[NodeWithScore]) -> None:
    assert [n.node.node_id for n in remote] == [n.node.node_id for n in local]
    assert [n.node.metadata for n in remote] == [n.node.metadata for n in local]
    assert [n.score for n in remote] == pytest.approx([n.score for n in local], abs=1e-6)


@pytest.mark.parametrize(
    "selection",
    [
        {"top_n": None},
        {"top_n": 2},
        {"top_n": 0},
        {"top_n": 3, "score_threshold": 0.5},
        {"top_n": None, "score_threshold": 1.0, "min_keep": 2},
        {"top_n": 1, "score_threshold": 1.0, "min_keep": 3},
        {"top_n": None, "keep_retrieval_score": True},
    ],
)
def test_remote_equals_local(server_url, reranker, selection):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, **selection)
    local = CrossRankRerank(reranker=reranker, **selection)
    assert remote.reranker is None and remote.model is None  # nothing loaded here
    expected = local.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert_same(remote.postprocess_nodes(make_nodes(), query_str=QUERY), expected)
    assert_same(asyncio.run(remote.apostprocess_nodes(make_nodes(), query_str=QUERY)), expected)


def test_remote_never_mutates_nodes(server_url):
    nodes = make_nodes()
    before = copy.deepcopy(nodes)
    out = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=None).postprocess_nodes(
        nodes, query_str=QUERY
    )
    for item in out:
        item.node.metadata["tags"].append("edited")
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]


def test_remote_emits_the_reranking_event(server_url):
    handler = LlamaDebugHandler(print_trace_on_end=False)
    post = CrossRankRerank(
        base_url=server_url, api_key=KEY, top_n=2, callback_manager=CallbackManager([handler])
    )
    out = asyncio.run(post.apostprocess_nodes(make_nodes(), query_str=QUERY))
    [(start, end)] = handler.get_event_pairs(CBEventType.RERANKING)
    assert start.payload[EventPayload.MODEL_NAME] == server_url
    assert end.payload[EventPayload.NODES] == out and len(out) == 2


class NoThreads(ThreadPoolExecutor):
    def submit(self, *args, **kwargs):
        raise AssertionError("the remote async path used a worker thread")


def test_async_is_real_async_io_not_a_thread(server_url, reranker):
    remote = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=3)
    queries = [QUERY, "paris weather", "python code", "bamboo", "cat and dog"]

    async def main():
        asyncio.get_running_loop().set_default_executor(NoThreads())
        return await asyncio.gather(
            *(remote.apostprocess_nodes(make_nodes(), query_str=q) for q in queries)
        )

    local = CrossRankRerank(reranker=reranker, top_n=3)
    for query, result in zip(queries, asyncio.run(main())):
        assert_same(result, local.postprocess_nodes(make_nodes(), query_str=query))


def test_wrong_key_and_empty_query(server_url):
    with pytest.raises(RemoteRerankError, match=r"answered 401 .*api_key="):
        CrossRankRerank(base_url=server_url, api_key="wrong").postprocess_nodes(
            make_nodes(), query_str=QUERY
        )
    with pytest.raises(ValueError, match="query is empty"):
        CrossRankRerank(base_url=server_url, api_key=KEY).postprocess_nodes(
            make_nodes(), query_str=" "
        )


def test_service_down_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # released below: nothing listens
    post = CrossRankRerank(base_url=url, timeout=5)
    with pytest.raises(RemoteRerankError, match=f"cannot reach the crossrank server at {url}"):
        post.postprocess_nodes(make_nodes(), query_str=QUERY)
    with pytest.raises(RemoteRerankError, match=f"cannot reach the crossrank server at {url}"):
        asyncio.run(post.apostprocess_nodes(make_nodes(), query_str=QUERY))


def test_round_trip_keeps_the_url_not_the_key(server_url, monkeypatch):
    post = CrossRankRerank(base_url=server_url, api_key=KEY, top_n=2, timeout=7)
    data = post.to_dict()
    assert KEY not in post.to_json() and "api_key" not in data
    monkeypatch.setenv("CROSSRANK_API_KEY", KEY)  # where a rebuilt one finds its key
    rebuilt = CrossRankRerank.from_dict(data)
    assert rebuilt.base_url == server_url and rebuilt.timeout == 7
    assert len(rebuilt.postprocess_nodes(make_nodes(), query_str=QUERY)) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device": "cpu"}, "device configure loading a model .* base_url="),
        ({"reranker_kwargs": {"cache_size": 8}}, "reranker_kwargs configure loading"),
        ({"batch_size": 8}, "batch_size is chosen by the server"),
        ({"base_url": "localhost:8080"}, "base_url must be an http"),
    ],
)
def test_remote_configuration_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossRankRerank(**{"base_url": "http://127.0.0.1:9", **kwargs})
    with pytest.raises(ValidationError, match="timeout"):
        CrossRankRerank(base_url="http://127.0.0.1:9", timeout=0)


def test_a_shared_remote_scorer_works_like_base_url(server_url, reranker):
    from crossrank.client.remote import RemoteReranker

    shared = RemoteReranker(server_url, api_key=KEY)
    post = CrossRankRerank(reranker=shared, top_n=3, fusion="rrf")
    assert post.reranker is shared and post.base_url == server_url.rstrip("/")
    local = CrossRankRerank(reranker=reranker, top_n=3, fusion="rrf")
    expected = local.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert_same(post.postprocess_nodes(make_nodes(), query_str=QUERY), expected)
    assert_same(asyncio.run(post.apostprocess_nodes(make_nodes(), query_str=QUERY)), expected)
