"""crossrank serve: real HTTP against a real uvicorn server on a free loopback port.

Every route's scores and order must equal ``Reranker.rank`` on the same model and settings.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")


from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import assert_same_ranking as assert_same  # noqa: E402
from crossrank.testing import expected_ranking as expected  # noqa: E402
from crossrank.testing import metric  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402


def wait_healthy(base_url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("the service never became healthy")


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)


@pytest.fixture(scope="module")
def server(reranker):
    with running_server(create_app(reranker, ServeSettings(max_documents=50))) as url:
        yield url


def test_v1_rerank_equals_rank(server, reranker):
    documents = [DOCS[0], {"text": DOCS[1]}] + DOCS[2:]  # strings and {"text"} objects mix
    response = post(f"{server}/v1/rerank", {"query": QUERY, "documents": documents, "top_n": 4})
    assert response.status_code == 200
    body = response.json()
    got = [(r["index"], r["relevance_score"]) for r in body["results"]]
    assert_same(got, expected(reranker, top_k=4))
    assert all("document" not in r for r in body["results"])  # Cohere default: no documents
    assert body["meta"]["api_version"]["version"] == "1" and body["id"]
    assert body["model"] == reranker.model_name and body["usage"]["total_tokens"] > 0

    with_docs = post(
        f"{server}/v1/rerank", {"query": QUERY, "documents": DOCS, "return_documents": True}
    ).json()
    assert [r["document"]["text"] for r in with_docs["results"]] == [
        DOCS[i] for i, _ in expected(reranker)
    ]


def test_v2_rerank_equals_rank(server, reranker):
    body = {"model": "any", "query": QUERY, "documents": DOCS, "top_n": 3}
    response = post(f"{server}/v2/rerank", body)
    assert response.status_code == 200
    data = response.json()
    assert_same(
        [(r["index"], r["relevance_score"]) for r in data["results"]], expected(reranker, top_k=3)
    )
    assert data["meta"]["api_version"]["version"] == "2"
    assert data["meta"]["billed_units"]["search_units"] == 1
    assert data["meta"]["tokens"]["input_tokens"] > 0


def test_v2_max_tokens_per_doc_cuts_each_document(server, reranker):
    tokenizer = reranker.tokenizer

    def first_tokens(text, n):  # lowercase single-space words: decoding gives the prefix back
        return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:n])

    def ask(limit):
        body = {"model": "any", "query": QUERY, "documents": DOCS, "max_tokens_per_doc": limit}
        return [
            (r["index"], r["relevance_score"])
            for r in post(f"{server}/v2/rerank", body).json()["results"]
        ]

    cut = [first_tokens(d, 3) for d in DOCS]
    assert cut[1] == "the giant panda"
    assert_same(ask(3), expected(reranker, docs=cut))
    assert ask(3) != ask(1000)
    assert_same(ask(1000), expected(reranker))
    error = post(
        f"{server}/v2/rerank", {"query": QUERY, "documents": DOCS, "max_tokens_per_doc": 0}
    )
    assert error.status_code == 422 and "max_tokens_per_doc" in error.json()["message"]


def test_tei_rerank_normalized_and_raw(server, reranker):
    body = {"query": QUERY, "texts": DOCS}
    normalized = post(f"{server}/rerank", body).json()
    assert isinstance(normalized, list)
    assert_same([(r["index"], r["score"]) for r in normalized], expected(reranker))
    assert all("text" not in r for r in normalized)
    raw = post(f"{server}/rerank", dict(body, raw_scores=True, return_text=True)).json()
    assert_same([(r["index"], r["score"]) for r in raw], expected(reranker, normalize=False))
    assert [r["text"] for r in raw] == [DOCS[r["index"]] for r in raw]
    assert any(r["score"] > 1 or r["score"] < 0 for r in raw)  # really logits


@pytest.mark.parametrize("route", ["/v1/rerank", "/v2/rerank", "/rerank"])
def test_score_threshold_and_min_keep_on_every_route(server, reranker, route):
    field = "texts" if route == "/rerank" else "documents"
    scores = sorted(h.score for h in reranker.rank(QUERY, DOCS))
    threshold = (scores[2] + scores[3]) / 2  # keeps exactly three
    key = "score" if route == "/rerank" else "relevance_score"

    def ask(**extra):
        data = post(f"{server}{route}", {"query": QUERY, field: DOCS, **extra}).json()
        rows = data if route == "/rerank" else data["results"]
        return [(r["index"], r[key]) for r in rows]

    assert_same(ask(score_threshold=threshold), expected(reranker, threshold=threshold))
    assert_same(
        ask(score_threshold=threshold, top_n=2), expected(reranker, threshold=threshold, top_k=2)
    )
    # min_keep: a threshold above every score still leaves the best min_keep
    assert_same(ask(score_threshold=2.0, min_keep=2), expected(reranker, threshold=2.0, min_keep=2))
    assert len(ask(score_threshold=2.0, min_keep=2)) == 2
    assert ask(score_threshold=2.0) == []


def test_model_field_is_accepted_and_ignored(server, reranker):
    response = post(
        f"{server}/v1/rerank",
        {"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCS},
    )
    assert response.status_code == 200
    assert response.headers["x-crossrank-model"] == reranker.model_name
    got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
    assert_same(got, expected(reranker))


def test_empty_documents_give_empty_results(server):
    assert post(f"{server}/v1/rerank", {"query": QUERY, "documents": []}).json()["results"] == []
    assert post(f"{server}/v2/rerank", {"query": QUERY, "documents": []}).json()["results"] == []
    assert post(f"{server}/rerank", {"query": QUERY, "texts": []}).json() == []


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"documents": DOCS}, 422, "query"),
        ({"query": "   ", "documents": DOCS}, 422, "query"),
        ({"query": QUERY}, 422, "documents"),
        ({"query": QUERY, "documents": "one string"}, 422, "documents"),
        ({"query": QUERY, "documents": ["a", 7]}, 422, "documents[1]"),
        ({"query": QUERY, "documents": [{"title": "no text"}]}, 422, "documents[0]"),
        ({"query": QUERY, "documents": DOCS, "top_n": -1}, 422, "top_n"),
        ({"query": QUERY, "documents": DOCS, "top_n": "3"}, 422, "top_n"),
        ({"query": QUERY, "documents": DOCS, "return_documents": "yes"}, 422, "return_documents"),
        ({"query": QUERY, "documents": ["d"] * 51}, 413, "documents"),
    ],
)
def test_bad_requests_name_the_field(server, body, status, field):
    response = post(f"{server}/v1/rerank", body)
    assert response.status_code == status, response.text
    error = response.json()
    assert field in error["message"] and error["detail"]


def test_tei_field_names_in_errors(server):
    response = post(f"{server}/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": "no"})
    assert response.status_code == 422 and "raw_scores" in response.json()["message"]
    response = post(f"{server}/rerank", {"query": QUERY})
    assert response.status_code == 422 and "texts" in response.json()["message"]


def test_invalid_json_and_non_utf8_bodies_are_4xx(server):
    headers = {"content-type": "application/json"}
    broken = httpx.post(f"{server}/v1/rerank", content=b'{"query": ', headers=headers)
    assert broken.status_code == 422 and "JSON" in broken.json()["message"]
    latin1 = '{"query": "q", "documents": ["caf\xe9"]}'.encode("latin-1")
    response = httpx.post(f"{server}/v1/rerank", content=latin1, headers=headers)
    assert response.status_code == 400 and "UTF-8" in response.json()["message"]


def test_nul_surrogate_and_huge_documents_never_500(server, reranker):
    docs = ["a\x00b", "bamboo\x00", "panda " * 100_000]  # the last is ~600 KB
    response = post(f"{server}/v1/rerank", {"query": QUERY, "documents": docs})
    assert response.status_code == 200
    assert_same(
        [(r["index"], r["relevance_score"]) for r in response.json()["results"]],
        expected(reranker, docs=docs),
    )
    # a lone surrogate survives JSON decoding but cannot be tokenized: 422 naming it
    raw = b'{"query": "q", "documents": ["fine", "bad \\ud800"]}'
    bad = httpx.post(
        f"{server}/v1/rerank", content=raw, headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422 and "documents[1]" in bad.json()["message"]


def test_body_over_the_limit_is_413(reranker):
    app = create_app(reranker, ServeSettings(max_body_bytes=2000))
    with running_server(app) as url:
        body = {"query": QUERY, "documents": ["bamboo " * 400]}
        response = post(f"{url}/v1/rerank", body)
        assert response.status_code == 413 and "max_body_bytes" in response.json()["message"]

        def chunks():  # no Content-Length: counted as it streams
            yield json.dumps(body).encode()

        streamed = httpx.post(
            f"{url}/v1/rerank", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS}).status_code == 200


def test_health_info_and_metrics(server, reranker):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    info = httpx.get(f"{server}/info").json()
    assert info["model"] == reranker.model_name and info["max_length"] == 128
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["backend"] == "torch"
    assert info["limits"]["max_documents"] == 50 and info["limits"]["api_key"] is False
    post(f"{server}/v2/rerank", {"query": QUERY, "documents": DOCS})
    text = httpx.get(f"{server}/metrics").text
    for name in (
        'crossrank_requests_total{route="/v2/rerank",status="200"}',
        "crossrank_request_duration_seconds_bucket",
        "crossrank_pairs_total",
        "crossrank_batches_total",
        "crossrank_batch_pairs_bucket",
        "crossrank_queue_pairs",
    ):
        assert name in text, name
    assert metric(server, "crossrank_pairs_total") >= len(DOCS)


def test_api_key_guards_every_route_but_health(reranker):
    app = create_app(reranker, ServeSettings(api_key="s3cret"))
    body = {"query": QUERY, "documents": DOCS}
    with running_server(app) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = post(f"{url}/v1/rerank", body, headers=headers)
            assert response.status_code == 401 and "API key" in response.json()["message"]
            assert httpx.get(f"{url}/metrics", headers=headers).status_code == 401
            assert httpx.get(f"{url}/info", headers=headers).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert post(f"{url}/v1/rerank", body, headers=good).status_code == 200
        assert httpx.get(f"{url}/metrics", headers=good).status_code == 200


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv("CROSSRANK_API_KEY", "from-env")
    assert ServeSettings.from_env().api_key == "from-env"
    assert ServeSettings.from_env(api_key="given").api_key == "given"
    assert "from-env" not in repr(ServeSettings.from_env())


def test_health_is_503_until_the_model_is_loaded(bert_dir):
    release = threading.Event()

    def load():
        assert release.wait(60)
        return Reranker(bert_dir, device="cpu", max_length=128)

    with running_server(create_app(load, ServeSettings())) as url:
        assert httpx.get(f"{url}/health").status_code == 503
        early = post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS})
        assert early.status_code == 503 and "loading" in early.json()["message"]
        release.set()
        wait_healthy(url)
        assert post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS}).status_code == 200


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"max_documents": 0}, "max_documents"),
        ({"max_documents": 100, "max_queued_pairs": 10}, "max_queued_pairs"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_settings_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        ServeSettings(**overrides)
