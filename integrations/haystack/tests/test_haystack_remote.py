"""CrossRankRanker(base_url=...) against a real crossrank server: the local ranker's results."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from haystack import Document, Pipeline
from haystack.utils import Secret
from haystack_integrations.components.rankers.crossrank import CrossRankRanker, RemoteRerankError

from crossrank.testing import PANDA_DOCS, PANDA_QUERY

API_KEY = "test-key"  # the server_url fixture's key


def make_docs():
    return [
        Document(content=text, meta={"title": f"doc {i}"}, score=1.0 - i / 10)
        for i, text in enumerate(PANDA_DOCS)
    ]


def ids_scores(result):
    return [(doc.id, doc.score) for doc in result["documents"]]


def assert_same(remote, local):
    assert [d for d, _ in remote] == [d for d, _ in local]
    assert [s for _, s in remote] == pytest.approx([s for _, s in local], abs=1e-5)


@pytest.mark.parametrize(
    "selection",
    [
        {"top_k": None},
        {"top_k": 2},
        {"top_k": 0},
        {"top_k": 3, "score_threshold": 0.5},
        {"top_k": None, "score_threshold": 1.0, "min_keep": 2},
        {"top_k": None, "fusion": "rrf", "meta_fields_to_embed": ["title"]},
    ],
)
def test_remote_equals_local(server_url, reranker, selection):
    remote = CrossRankRanker(base_url=server_url, api_key=Secret.from_token(API_KEY), **selection)
    local = CrossRankRanker(reranker=reranker, **selection)
    want = ids_scores(local.run(query=PANDA_QUERY, documents=make_docs()))
    assert_same(ids_scores(remote.run(query=PANDA_QUERY, documents=make_docs())), want)
    got = asyncio.run(remote.run_async(query=PANDA_QUERY, documents=make_docs()))
    assert_same(ids_scores(got), want)


def test_api_key_from_the_environment_and_a_wrong_one(server_url, monkeypatch):
    monkeypatch.setenv("CROSSRANK_API_KEY", API_KEY)
    ranker = CrossRankRanker(base_url=server_url, top_k=1)  # the default Secret reads it
    assert len(ranker.run(query=PANDA_QUERY, documents=make_docs())["documents"]) == 1
    wrong = CrossRankRanker(base_url=server_url, api_key=Secret.from_token("wrong"))
    with pytest.raises(RemoteRerankError):
        wrong.run(query=PANDA_QUERY, documents=make_docs())


def test_remote_pipeline_yaml_round_trip(server_url, monkeypatch):
    monkeypatch.setenv("MY_CROSSRANK_KEY", API_KEY)
    key = Secret.from_env_var("MY_CROSSRANK_KEY")
    pipeline = Pipeline()
    pipeline.add_component("ranker", CrossRankRanker(base_url=server_url, api_key=key, top_k=3))
    text = pipeline.dumps()
    assert API_KEY not in text and "MY_CROSSRANK_KEY" in text
    loaded = Pipeline.loads(text)
    data = {"ranker": {"query": PANDA_QUERY, "documents": make_docs()}}
    assert_same(ids_scores(loaded.run(data)["ranker"]), ids_scores(pipeline.run(data)["ranker"]))


NO_TORCH = """
import socket, sys
sys.modules["torch"] = None  # as if not installed: any import of it raises ImportError
sys.modules["transformers"] = None
with socket.socket() as sock:  # a port nothing listens on: the call fails fast, as remote
    sock.bind(("127.0.0.1", 0))
    URL = f"http://127.0.0.1:{sock.getsockname()[1]}"
from haystack import Document, Pipeline
from haystack_integrations.components.rankers.crossrank import CrossRankRanker, RemoteRerankError

ranker = CrossRankRanker(base_url=URL, fusion="minmax")
pipeline = Pipeline()
pipeline.add_component("ranker", ranker)
ranker = Pipeline.loads(pipeline.dumps()).get_component("ranker")  # from YAML, still no torch
ranker.warm_up()
try:
    ranker.run(query="q", documents=[Document(content="a", score=1.0)])
except RemoteRerankError:
    print("no torch")
"""


def test_a_remote_ranker_needs_no_torch():
    pytest.importorskip("httpx", reason="the remote client needs httpx")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NO_TORCH)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("no torch")
