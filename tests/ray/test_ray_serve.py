"""crossrank.ray.serve_deployment: the `crossrank serve` app on Ray Serve, 2 replicas, real HTTP."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'crossrank[ray]'")
serve = pytest.importorskip(
    "ray.serve", reason="Ray Serve is missing: pip install 'crossrank[ray]'"
)
pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from starlette.testclient import TestClient  # noqa: E402

from crossrank import Reranker  # noqa: E402
from crossrank.ray import serve_deployment  # noqa: E402
from crossrank.ray.deployment import REPLICA_HEADER  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402

OPTIONS = {"max_length": 128, "device": "cpu"}
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "what is panda?"
DOCS = [
    "hi",
    "the giant panda is a bear of china that eats bamboo",
    "paris is the capital city of france",
    "pandas eat bamboo",
    "a black and white bear",
    "python is a snake and a language",
]
BODY = {"model": "any", "query": QUERY, "documents": DOCS, "top_n": 4, "return_documents": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def settings():
    return ServeSettings(api_key=KEY, max_documents=50)


@pytest.fixture(scope="module")
def url(bert_dir, settings):
    """Ray Serve on a small local Ray: 2 replicas of the service behind one loopback URL."""
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = serve_deployment(bert_dir, settings=settings, reranker_kwargs=OPTIONS, num_replicas=2)
        serve.run(app, name="crossrank", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def single_process(bert_dir, settings):
    """The same app in this process, without Ray: what every replica must answer."""
    with TestClient(create_app(Reranker(bert_dir, **OPTIONS), settings)) as client:
        yield client


def test_cohere_route_answers_like_single_process_and_spreads_over_replicas(url, single_process):
    expected = single_process.post("/v1/rerank", json=BODY, headers=AUTH).json()["results"]
    assert len(expected) == 4

    def ask(_):
        response = httpx.post(f"{url}/v1/rerank", json=BODY, headers=AUTH, timeout=60)
        return response.status_code, response.json(), response.headers.get(REPLICA_HEADER)

    with ThreadPoolExecutor(max_workers=6) as pool:  # bounded: 36 requests
        answers = list(pool.map(ask, range(36)))
    replicas = set()
    for status, body, replica in answers:
        assert status == 200
        got = body["results"]
        assert [(r["index"], r["document"]["text"]) for r in got] == [
            (r["index"], r["document"]["text"]) for r in expected
        ]
        assert (
            max(abs(a["relevance_score"] - b["relevance_score"]) for a, b in zip(got, expected))
            <= 1e-6
        )
        replicas.add(replica)
    assert len(replicas) == 2, f"traffic reached replicas {replicas}"


def test_same_auth_limits_and_routes_as_the_service(url, single_process):
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # open route
    unauthorized = httpx.post(f"{url}/v1/rerank", json=BODY, timeout=30)
    assert unauthorized.status_code == 401
    too_many = dict(BODY, documents=["doc"] * 51)
    assert (
        httpx.post(f"{url}/v1/rerank", json=too_many, headers=AUTH, timeout=30).status_code == 413
    )
    tei = httpx.post(
        f"{url}/rerank", json={"query": QUERY, "texts": DOCS}, headers=AUTH, timeout=30
    )
    local = single_process.post("/rerank", json={"query": QUERY, "texts": DOCS}, headers=AUTH)
    assert [r["index"] for r in tei.json()] == [r["index"] for r in local.json()]
    assert "crossrank" in httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text


def test_arguments_are_checked(bert_dir):
    with pytest.raises(ValueError, match="num_replicas must be an int >= 1"):
        serve_deployment(bert_dir, num_replicas=0)
    with pytest.raises(ValueError, match="num_gpus_per_replica must be a number >= 0"):
        serve_deployment(bert_dir, num_gpus_per_replica=-1)
