"""crossrank serve: dynamic batching, the bounded queue (429), chunked large requests, SIGTERM.

A gate around the real reranker holds the worker's first round, so that requests pile up in the
queue in a known state; every score still comes from the real ``score_many``.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import assert_same_ranking as assert_same  # noqa: E402
from crossrank.testing import expected_ranking as expected  # noqa: E402
from crossrank.testing import metric  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

WAIT_S = 60


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)


def test_concurrent_requests_share_batches_and_get_their_own_results(
    reranker, make_gated, wait_for
):
    gated = make_gated(reranker)
    queries = [f"what is panda number {i}?" for i in range(16)]
    docs = [DOCS[i % len(DOCS) :] + DOCS[: i % len(DOCS)] for i in range(16)]  # all different
    with running_server(create_app(gated, ServeSettings(max_wait_ms=0))) as url:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [
                pool.submit(post, f"{url}/v1/rerank", {"query": q, "documents": d, "top_n": 4})
                for q, d in zip(queries, docs)
            ]
            total = sum(len(d) for d in docs)
            # the first round holds the gate; every request is accepted and waits in the queue
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == total, "all accepted")
            gated.gate.set()
            responses = [f.result(timeout=WAIT_S) for f in futures]
        for query, texts, response in zip(queries, docs, responses):
            assert response.status_code == 200
            got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
            assert_same(got, expected(reranker, docs=texts, query=query, top_k=4))
        batches = metric(url, "crossrank_batches_total")
        assert batches < len(queries)  # merged: 16 requests in (typically) 2 rounds
        assert max(len(call) for call in gated.calls) > 1
        assert metric(url, "crossrank_pairs_total") == total
        assert metric(url, "crossrank_queue_pairs") == 0


def test_full_queue_answers_429_and_never_drops_an_accepted_request(reranker, make_gated, wait_for):
    gated = make_gated(reranker)
    settings = ServeSettings(max_documents=6, max_queued_pairs=8, retry_after_s=3)
    body = {"query": "what is panda?", "documents": DOCS}
    with running_server(create_app(gated, settings)) as url:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            accepted = pool.submit(post, f"{url}/v1/rerank", body)
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 6, "the first request")
            refused = post(f"{url}/v2/rerank", body)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "3"
            assert "max_queued_pairs" in refused.json()["message"]
            assert "error_type" not in refused.json()  # TEI's keys on the TEI route only
            tei = post(f"{url}/rerank", {"query": "q", "texts": DOCS})
            assert tei.status_code == 429 and tei.headers["retry-after"] == "3"
            assert tei.json()["error_type"] == "Overloaded"
            assert "max_queued_pairs" in tei.json()["error"] == tei.json()["message"]
            gated.gate.set()
            response = accepted.result(timeout=WAIT_S)
        assert response.status_code == 200
        got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
        assert_same(got, expected(reranker))
        assert post(f"{url}/v2/rerank", body).status_code == 200  # room again
        text = httpx.get(f"{url}/metrics").text
        assert 'crossrank_requests_total{route="/v2/rerank",status="429"} 1.0' in text


def test_large_request_is_chunked_and_small_ones_go_between_its_chunks(
    reranker, make_gated, wait_for
):
    gated = make_gated(reranker)
    settings = ServeSettings(max_documents=200, max_batch_tokens=64, max_wait_ms=0)
    big_docs = [f"{DOCS[i % len(DOCS)]} {i}" for i in range(120)]
    with running_server(create_app(gated, settings)) as url:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            big = pool.submit(post, f"{url}/rerank", {"query": "big", "texts": big_docs})
            wait_for(lambda: len(gated.calls) == 1, "the first chunk of the big request")
            small = pool.submit(post, f"{url}/rerank", {"query": "small", "texts": DOCS[:3]})
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 123, "the small request")
            gated.gate.set()
            big_response, small_response = big.result(WAIT_S), small.result(WAIT_S)
        rounds = [[q for q, _ in call] for call in gated.calls]
        big_rounds = [i for i, queries in enumerate(rounds) if "big" in queries]
        small_round = next(i for i, queries in enumerate(rounds) if "small" in queries)
        assert len(big_rounds) > 2  # scored in chunks
        assert small_round < big_rounds[-1]  # the small request did not wait for all of them
        assert small_round <= 2
        got = [(r["index"], r["score"]) for r in big_response.json()]
        assert_same(got, expected(reranker, docs=big_docs, query="big"))
        got = [(r["index"], r["score"]) for r in small_response.json()]
        assert_same(got, expected(reranker, docs=DOCS[:3], query="small"))


def test_a_request_cut_by_a_full_round_finishes_first_in_the_next(reranker, make_gated, wait_for):
    """Equal requests that do not divide the budget are answered in arrival order: a request cut
    by a full round keeps its place (before, its rest went behind every later request)."""
    gated = make_gated(reranker)
    docs = [
        f"{'x' * 30} doc{i:02d}" for i in range(4)
    ]  # 36 chars: 9 + 4 tokens a pair, 52 a request
    settings = ServeSettings(max_batch_tokens=78, max_wait_ms=0)  # one and a half requests a round
    names = ["b", "c", "d", "e"]
    with running_server(create_app(gated, settings)) as url:
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            first = pool.submit(post, f"{url}/rerank", {"query": "a", "texts": docs[:1]})
            wait_for(lambda: len(gated.calls) == 1, "the first round")
            futures = []
            for n, name in enumerate(names, start=1):
                futures.append(pool.submit(post, f"{url}/rerank", {"query": name, "texts": docs}))
                wait_for(
                    lambda n=n: metric(url, "crossrank_queue_pairs") == 1 + 4 * n, f"request {name}"
                )
            gated.gate.set()
            responses = [f.result(WAIT_S) for f in [first, *futures]]
        rounds = [[q for q, _ in call] for call in gated.calls]
        last_round = {name: max(i for i, r in enumerate(rounds) if name in r) for name in names}
        assert [last_round[n] for n in names] == sorted(last_round[n] for n in names), rounds
        assert rounds[1:] == [["b", "c"], ["c", "d"], ["e"]]  # full rounds, arrival order
        for name, response in zip(names, responses[1:]):
            got = [(r["index"], r["score"]) for r in response.json()]
            assert_same(got, expected(reranker, docs=docs, query=name))


def test_normalized_and_raw_requests_share_one_scoring_call(reranker, make_gated, wait_for):
    gated = make_gated(reranker)
    with running_server(create_app(gated, ServeSettings(max_wait_ms=0))) as url:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            first = pool.submit(post, f"{url}/rerank", {"query": "first", "texts": DOCS[:1]})
            wait_for(lambda: len(gated.calls) == 1, "the first round")
            normalized = pool.submit(
                post, f"{url}/v1/rerank", {"query": "normalized", "documents": DOCS, "top_n": 3}
            )
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 1 + len(DOCS), "v1")
            raw = pool.submit(
                post, f"{url}/rerank", {"query": "raw", "texts": DOCS, "raw_scores": True}
            )
            wait_for(lambda: metric(url, "crossrank_queue_pairs") == 1 + 2 * len(DOCS), "tei")
            gated.gate.set()
            assert first.result(WAIT_S).status_code == 200
            normalized, raw = normalized.result(WAIT_S), raw.result(WAIT_S)
    assert [[q for q, _ in call] for call in gated.calls][1:] == [["normalized", "raw"]]
    got = [(r["index"], r["relevance_score"]) for r in normalized.json()["results"]]
    assert_same(got, expected(reranker, query="normalized", top_k=3))
    got = [(r["index"], r["score"]) for r in raw.json()]
    assert_same(got, expected(reranker, query="raw", normalize=False))
    assert max(score for _, score in got) > 1.0 or min(score for _, score in got) < 0.0


def test_a_served_request_tokenizes_each_text_once(bert_dir, monkeypatch):
    rr = Reranker(bert_dir, device="cpu", max_length=128)
    tokenizer_class = type(rr.tokenizer)
    tokenized = []
    original = tokenizer_class.__call__

    def counting(self, text=None, *args, **kwargs):
        tokenized.extend([text] if isinstance(text, str) else list(text))
        return original(self, text, *args, **kwargs)

    with running_server(create_app(rr, ServeSettings())) as url:
        monkeypatch.setattr(tokenizer_class, "__call__", counting)
        body = {"query": "what is panda?", "documents": DOCS, "max_tokens_per_doc": 3}
        response = post(f"{url}/v2/rerank", body)
        monkeypatch.undo()
    assert response.status_code == 200
    assert sorted(tokenized) == sorted([*DOCS, "what is panda?"])  # each text once
    stats = rr.stats()
    assert stats["forward_passes"] == 1 and stats["pairs_scored"] == len(DOCS)


def test_scoring_error_answers_the_request_and_the_worker_lives_on(reranker):
    class FailsOnce:
        def __init__(self, reranker) -> None:
            self.reranker, self.calls = reranker, []
            self.model_name, self.max_length = reranker.model_name, reranker.max_length

        def score_many(self, queries, documents_per_query, **kwargs):
            if not self.calls:
                self.calls.append(queries)
                raise RuntimeError("device lost")
            return self.reranker.score_many(queries, documents_per_query, **kwargs)

    with running_server(create_app(FailsOnce(reranker), ServeSettings())) as url:
        body = {"query": "what is panda?", "documents": DOCS}
        failed = post(f"{url}/v1/rerank", body)
        assert failed.status_code == 500 and "RuntimeError" in failed.json()["message"]
        assert post(f"{url}/v1/rerank", body).status_code == 200
        assert metric(url, "crossrank_queue_pairs") == 0
        text = httpx.get(f"{url}/metrics").text
        assert 'crossrank_requests_total{route="/v1/rerank",status="500"} 1.0' in text


def test_sigterm_finishes_accepted_requests_and_exits_0(bert_dir, reranker, tmp_path, wait_for):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", bert_dir]
    command += ["--port", str(port), "--device", "cpu", "--max-length", "128"]
    command += ["--max-batch-tokens", "64", "--log-level", "warning"]  # a few pairs per round
    log = open(tmp_path / "server.log", "w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(url) or process.poll() is not None, "the server", 300)
        assert process.poll() is None, _read(log)
        docs = [f"{DOCS[i % len(DOCS)]} {i}" for i in range(150)]
        body = {"query": "q", "documents": docs}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            accepted = pool.submit(httpx.post, f"{url}/v1/rerank", json=body, timeout=300)
            wait_for(lambda: metric(url, "crossrank_queue_pairs") > 0, "the request")
            process.send_signal(signal.SIGTERM)  # while the request is being scored in chunks
            response = accepted.result(timeout=300)
        assert response.status_code == 200, response.text
        got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
        assert_same(got, expected(reranker, docs=docs, query="q"))
        assert process.wait(timeout=300) == 0, _read(log)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        log.close()


@pytest.mark.slow
def test_serve_compile_gives_the_eager_scores(bert_dir, reranker, tmp_path, wait_for):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", bert_dir, "--compile"]
    command += ["--port", str(port), "--device", "cpu", "--max-length", "128"]
    command += ["--log-level", "warning"]
    log = open(tmp_path / "server.log", "w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthy(url) or process.poll() is not None, "the server", 300)
        assert process.poll() is None, _read(log)
        assert httpx.get(f"{url}/info").json()["compile"] is True
        body = {"query": "q", "documents": DOCS}
        response = httpx.post(f"{url}/v1/rerank", json=body, timeout=300)  # compiles first
        assert response.status_code == 200, response.text
        got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
        assert_same(got, expected(reranker, docs=DOCS, query="q"))
    finally:
        process.kill()
        process.wait(30)
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]


def test_crossrank_serve_reports_a_model_that_fails_to_load(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", str(tmp_path / "none")]
    command += ["--port", "0", "--log-level", "warning"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "no such directory" in done.stderr
