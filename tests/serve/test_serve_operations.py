"""What an operator sees of each request: TEI's timing headers, x-request-id, the JSON access log;
deadlines (504) and clients that go away (their queued pairs dropped, counted); error bodies
without stack traces."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import socket

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import metric  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

TIMING_HEADERS = ("x-compute-time", "x-total-time", "x-queue-time", "x-tokenization-time",
                  "x-inference-time")  # fmt: skip


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)


@pytest.fixture(scope="module")
def server(reranker):
    with running_server(create_app(reranker, ServeSettings(max_documents=50))) as url:
        yield url


def test_every_answer_carries_tei_timing_headers_in_milliseconds(server):
    for route, field in (("/v1/rerank", "documents"), ("/v2/rerank", "documents"),
                         ("/rerank", "texts")):  # fmt: skip
        response = post(f"{server}{route}", {"query": QUERY, field: DOCS})
        assert response.status_code == 200
        times = {name: int(response.headers[name]) for name in TIMING_HEADERS}
        assert times["x-compute-time"] == times["x-total-time"]  # as TEI
        parts = times["x-queue-time"] + times["x-tokenization-time"] + times["x-inference-time"]
        assert parts <= times["x-total-time"] + 2  # each rounded down to whole ms
    for response in (httpx.get(f"{server}/health"), post(f"{server}/v1/rerank", {"query": "q"})):
        assert all(name in response.headers for name in TIMING_HEADERS)  # errors too
        assert response.headers["x-inference-time"] == "0"


def test_timing_headers_say_where_a_held_request_waited(reranker, make_gated, wait_for):
    held = make_gated(reranker)
    with running_server(create_app(held, ServeSettings(max_wait_ms=0))) as url:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, f"{url}/rerank", {"query": "a", "texts": DOCS[:1]})
            wait_for(lambda: len(held.calls) == 1, "the first round")
            second = pool.submit(post, f"{url}/rerank", {"query": "b", "texts": DOCS})
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 1 + len(DOCS), "queued")
            import time

            time.sleep(0.3)  # both wait: the first in its round, the second in the queue
            held.gate.set()
            a, b = first.result(60), second.result(60)
    assert int(a.headers["x-inference-time"]) >= 250  # its round was held
    assert int(b.headers["x-queue-time"]) >= 250  # it waited for that round


def test_request_id_is_echoed_or_generated_and_logged(server, caplog):
    with caplog.at_level(logging.INFO, logger="crossrank.serve.access"):
        given = post(f"{server}/v1/rerank", {"query": QUERY, "documents": DOCS},
                     headers={"x-request-id": "trace-42"})  # fmt: skip
        made = post(f"{server}/v1/rerank", {"query": QUERY, "documents": DOCS[:2]})
        unsafe = post(f"{server}/v1/rerank", {"query": QUERY, "documents": DOCS[:2]},
                      headers={"x-request-id": "x" * 500})  # fmt: skip
    assert given.headers["x-request-id"] == "trace-42"
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != "trace-42"
    assert len(unsafe.headers["x-request-id"]) == 32  # not echoed: too long
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "crossrank.serve.access"]  # fmt: skip
    by_id = {line["request_id"]: line for line in lines}
    line = by_id["trace-42"]
    assert (line["method"], line["path"], line["status"], line["pairs"]) == (
        "POST",
        "/v1/rerank",
        200,
        len(DOCS),
    )
    assert line["model"] and line["total_ms"] >= line["inference_ms"] >= 0
    assert by_id[made.headers["x-request-id"]]["pairs"] == 2


def test_request_timeout_is_504_and_drops_the_unscored_pairs(
    reranker, make_gated, wait_for, labelled
):
    held = make_gated(reranker)
    settings = ServeSettings(request_timeout_s=0.5, max_wait_ms=0)
    with running_server(create_app(held, settings)) as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, f"{url}/rerank", {"query": "a", "texts": DOCS[:1]})
            wait_for(lambda: len(held.calls) == 1, "the first round")
            late = post(f"{url}/v1/rerank", {"query": "late", "documents": DOCS})
            assert late.status_code == 504 and "request_timeout_s" in late.json()["message"]
            assert "x-request-id" in late.headers
            assert metric(url, "crossrank_queue_pairs") == 1  # only the held round's pair
            held.gate.set()
            assert first.result(60).status_code == 504  # it passed its deadline too
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 0, "the round to end")
        model = held.model_name
        assert labelled(url, f'crossrank_timeouts_total{{model="{model}"}}') == 2
        sample = f'crossrank_dropped_pairs_total{{model="{model}",reason="timeout"}}'
        assert labelled(url, sample) == len(DOCS)  # the first's pair was being scored
        assert [q for call in held.calls for q, _ in call] == ["a"]  # "late" never scored
        assert post(f"{url}/v1/rerank", {"query": "q", "documents": DOCS}).status_code == 200


def test_a_client_that_disconnects_has_its_queued_pairs_dropped(reranker, make_gated, wait_for,
                                                               labelled):  # fmt: skip
    held = make_gated(reranker)
    with running_server(create_app(held, ServeSettings(max_wait_ms=0))) as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, f"{url}/rerank", {"query": "a", "texts": DOCS[:1]})
            wait_for(lambda: len(held.calls) == 1, "the first round")
            port = int(url.rsplit(":", 1)[1])
            clients = []
            for i in range(3):  # raw sockets: closed without reading the answer
                body = json.dumps({"query": f"gone {i}", "documents": DOCS}).encode()
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                clients.append(sock)
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 1 + 3 * len(DOCS), "queued")
            for sock in clients:
                sock.close()
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 1, "the dropped pairs")
            held.gate.set()
            assert first.result(60).status_code == 200
        model = held.model_name
        assert labelled(url, f'crossrank_disconnects_total{{model="{model}"}}') == 3
        sample = f'crossrank_dropped_pairs_total{{model="{model}",reason="disconnect"}}'
        assert labelled(url, sample) == 3 * len(DOCS)
        assert [q for call in held.calls for q, _ in call] == ["a"]  # nothing scored for nobody


def test_error_bodies_carry_no_stack_trace(reranker):
    class Broken:
        model_name, max_length = "broken", 128

        def score_many(self, *args, **kwargs):
            raise RuntimeError("secret detail\nTraceback (most recent call last): ...")

    with running_server(create_app(Broken(), ServeSettings())) as url:
        for route, field in (("/v1/rerank", "documents"), ("/rerank", "texts")):
            response = post(f"{url}{route}", {"query": QUERY, field: DOCS})
            assert response.status_code == 500
            assert response.json()["message"] == "internal error: RuntimeError"
            assert "Traceback" not in response.text and "secret" not in response.text
            assert "x-request-id" in response.headers and "x-total-time" in response.headers


def test_a_client_gone_before_its_body_is_counted_499_and_the_server_goes_on(
    reranker, labelled, wait_for
):
    with running_server(create_app(reranker, ServeSettings())) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
            sock.sendall(f'{head}\r\nContent-Length: 1000\r\n\r\n{{"query": '.encode())
        sample = 'crossrank_requests_total{route="/v1/rerank",status="499"}'
        wait_for(lambda: labelled(url, sample) == 1, "the 499 to be counted")
        assert labelled(url, 'crossrank_requests_total{route="/v1/rerank",status="500"}') == 0
        assert post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS}).status_code == 200


def test_a_non_finite_score_is_a_500_naming_the_document_never_a_null(reranker):
    class Overflows:  # what a float16 model can give: one logit overflows
        model_name, max_length = "overflows", 128

        def score_many(self, queries, documents_per_query, **kwargs):
            return [[float("nan") if i == 1 else 0.5 for i in range(len(d))]
                    for d in documents_per_query]  # fmt: skip

    with running_server(create_app(Overflows(), ServeSettings())) as url:
        for route, field in (("/v1/rerank", "documents"), ("/rerank", "texts")):
            response = post(f"{url}{route}", {"query": QUERY, field: DOCS})
            assert response.status_code == 500, response.text
            message = response.json()["message"]
            assert f"non-finite score (nan) for {field}[1]" in message and "float32" in message


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--request-timeout", "0"], "request_timeout_s must be a positive number"),
        (["--model", "a=/x", "--model", "a=/y"], "given twice"),
        (["--ssl-certfile", "c.pem"], "--ssl-certfile and --ssl-keyfile go together"),
    ],
)
def test_bad_service_options_fail_in_one_line_before_any_model_loads(flags, words, capsys):
    from crossrank.cli import main

    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
