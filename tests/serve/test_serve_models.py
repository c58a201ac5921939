"""Several models in one server: routing by the model field (or TEI's header), 404 for an unknown
name, /info and /v1/models, a batcher, queue bound and metrics label per model."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.serve.models import parse_model_spec  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import assert_same_ranking as assert_same  # noqa: E402
from crossrank.testing import expected_ranking as expected  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402


@pytest.fixture(scope="module")
def rerankers(model_dirs):
    return {
        "en": Reranker(model_dirs["bert"], device="cpu", max_length=128),
        "multi": Reranker(model_dirs["xlm-roberta"], device="cpu", max_length=64),
    }


@pytest.fixture(scope="module")
def server(rerankers):
    settings = ServeSettings(max_documents=20, max_queued_pairs=40)
    with running_server(create_app(rerankers, settings)) as url:
        yield url


def results(response, key="relevance_score"):
    rows = response.json() if isinstance(response.json(), list) else response.json()["results"]
    return [(r["index"], r[key]) for r in rows]


@pytest.mark.parametrize("name", ["en", "multi"])
def test_each_route_scores_with_the_model_asked_for(server, rerankers, name):
    want = expected(rerankers[name])
    for route in ("/v1/rerank", "/v2/rerank"):
        response = post(f"{server}{route}", {"model": name, "query": QUERY, "documents": DOCS})
        assert response.status_code == 200, response.text
        assert response.headers["x-crossrank-model"] == name
        assert_same(results(response), want)
    v1 = post(f"{server}/v1/rerank", {"model": name, "query": QUERY, "documents": DOCS})
    assert v1.json()["model"] == name  # Jina's model field names the served model
    tei = post(f"{server}/rerank", {"query": QUERY, "texts": DOCS},
               headers={"X-Crossrank-Model": name})  # fmt: skip
    assert tei.headers["x-crossrank-model"] == name
    assert_same(results(tei, "score"), want)


def test_the_two_models_really_differ_and_the_first_is_the_default(server, rerankers):
    assert expected(rerankers["en"]) != expected(rerankers["multi"])
    default = post(f"{server}/v1/rerank", {"query": QUERY, "documents": DOCS})
    assert default.headers["x-crossrank-model"] == "en"
    assert_same(results(default), expected(rerankers["en"]))
    tei = post(f"{server}/rerank", {"query": QUERY, "texts": DOCS})
    assert_same(results(tei, "score"), expected(rerankers["en"]))


@pytest.mark.parametrize("route", ["/v1/rerank", "/v2/rerank", "/rerank"])
def test_an_unknown_model_is_a_404_listing_the_served_names(server, route):
    field = "texts" if route == "/rerank" else "documents"
    response = post(f"{server}{route}", {"model": "rerank-v3.5", "query": QUERY, field: DOCS})
    assert response.status_code == 404, response.text
    message = response.json()["message"]
    assert "'rerank-v3.5'" in message and message.endswith("served models: en, multi")
    by_header = post(f"{server}/rerank", {"query": QUERY, "texts": DOCS},
                     headers={"X-Crossrank-Model": "nope"})  # fmt: skip
    assert by_header.status_code == 404 and by_header.json()["error_type"] == "Validation"


def test_info_and_models_list_every_model_with_its_settings(server):
    info = httpx.get(f"{server}/info").json()
    assert [m["name"] for m in info["models"]] == ["en", "multi"]
    assert [m["max_length"] for m in info["models"]] == [128, 64]
    assert info["max_length"] == 128 and info["limits"]["max_queued_pairs"] == 40
    listed = httpx.get(f"{server}/v1/models").json()
    assert listed["object"] == "list"
    assert [(m["id"], m["max_length"], m["ready"]) for m in listed["data"]] == [
        ("en", 128, True),
        ("multi", 64, True),
    ]
    assert {m["family"] for m in listed["data"]} and all(m["device"] for m in listed["data"])
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["models"] == ["en", "multi"]


def test_each_model_counts_under_its_own_label(server, labelled):
    before = {n: labelled(server, f'crossrank_model_pairs_total{{model="{n}"}}') for n in
              ("en", "multi")}  # fmt: skip
    post(f"{server}/v2/rerank", {"model": "multi", "query": QUERY, "documents": DOCS[:3]})
    after = {n: labelled(server, f'crossrank_model_pairs_total{{model="{n}"}}') for n in
             ("en", "multi")}  # fmt: skip
    assert after["multi"] - before["multi"] == 3 and after["en"] == before["en"]
    sample = 'crossrank_model_requests_total{model="multi",status="200"}'
    assert labelled(server, sample) >= 1
    assert labelled(server, 'crossrank_model_queue_pairs{model="en"}') == 0


def test_each_model_has_its_own_queue_bound(rerankers, make_gated, wait_for, labelled):
    en = make_gated(rerankers["en"])  # holds the "en" worker: its queue fills, "multi" still serves
    settings = ServeSettings(max_documents=6, max_queued_pairs=6)
    import concurrent.futures

    with running_server(create_app({"en": en, "multi": rerankers["multi"]}, settings)) as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            body = {"model": "en", "query": QUERY, "documents": DOCS}
            held = pool.submit(post, f"{url}/v1/rerank", body)
            wait_for(lambda: labelled(url, 'crossrank_model_queue_pairs{model="en"}') == 6, "en")
            assert post(f"{url}/v1/rerank", body).status_code == 429
            other = post(f"{url}/v1/rerank", dict(body, model="multi"))
            assert other.status_code == 200
            assert_same(results(other), expected(rerankers["multi"]))
            en.gate.set()
            assert held.result(60).status_code == 200


def test_one_model_keeps_ignoring_the_model_field(rerankers):
    app = create_app({"named": rerankers["en"]}, ServeSettings())
    with running_server(app) as url:
        response = post(f"{url}/v1/rerank", {"model": "rerank-english-v3.0", "query": QUERY,
                                             "documents": DOCS})  # fmt: skip
        assert response.status_code == 200 and response.headers["x-crossrank-model"] == "named"
        assert response.json()["model"] == "named"


def test_model_specs_parse_and_name_errors(tmp_path):
    from crossrank.cli.commands import _build_parser
    from crossrank.cli.serve import model_specs

    assert parse_model_spec("en=org/model") == ("en", "org/model")
    assert parse_model_spec("org/model") == (None, "org/model")
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert parse_model_spec(str(odd)) == (None, str(odd))  # an existing path stays a path
    parse = _build_parser().parse_args
    args = parse(["serve", "--model", "en=/m/en", "--model", "multi=/m/multi"])
    assert args.model == "en=/m/en" and model_specs(args) == [
        ("en", "/m/en"),
        ("multi", "/m/multi"),
    ]
    assert model_specs(parse(["serve", "--model", "/m/one"])) == [(None, "/m/one")]
    for bad, words in ((["/m/a", "/m/b"], "give each a name"), (["x=/a", "x=/b"], "given twice"),
                       (["=/a"], "NAME=PATH")):  # fmt: skip
        flags = [f for spec in bad for f in ("--model", spec)]
        with pytest.raises(ValueError, match=words):
            model_specs(parse(["serve", *flags]))
    assert isinstance(parse(["serve"]), argparse.Namespace)
