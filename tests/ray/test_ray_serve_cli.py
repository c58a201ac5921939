"""`crossrank serve --ray`: the command in a subprocess, 2 replicas of two models (``--model
NAME=PATH`` twice) on its own local Ray, routing by the request's model field, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is missing: pip install 'crossrank[ray]'")
pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.ray.deployment import REPLICA_HEADER  # noqa: E402

STARTUP_S = 420  # a Ray start and two model loads on a busy 2-core machine
BODY = {"query": "what is panda?", "documents": ["hi", "the giant panda is a bear"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_ray_command_routes_two_models_spreads_requests_and_exits_0_on_sigterm(
    model_dirs, tmp_path
):
    port, log = free_port(), tmp_path / "serve.log"
    paths = {"en": model_dirs["bert"], "multi": model_dirs["xlm-roberta"]}
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--ray", "--replicas", "2"]
    command += ["--model", f"en={paths['en']}", "--model", f"multi={paths['multi']}"]
    command += ["--max-length", "128", "--device", "cpu"]
    command += ["--port", str(port), "--api-key", "k"]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    try:
        deadline = time.monotonic() + STARTUP_S
        while "replica(s) at" not in log.read_text(encoding="utf-8"):
            assert process.poll() is None, log.read_text(encoding="utf-8")[-3000:]
            assert time.monotonic() < deadline, "crossrank serve --ray did not start in time"
            time.sleep(2)
        url, auth = f"http://127.0.0.1:{port}/v1/rerank", {"Authorization": "Bearer k"}
        assert httpx.post(url, json=BODY, timeout=30).status_code == 401
        for name, path in paths.items():  # each name reaches its own model, on either replica
            expected = Reranker(path, max_length=128, device="cpu").compute_score(
                [[BODY["query"], doc] for doc in BODY["documents"]], normalize=True
            )
            response = httpx.post(url, json={**BODY, "model": name}, headers=auth, timeout=30)
            assert response.status_code == 200, response.text
            got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
            assert max(abs(got[i] - score) for i, score in enumerate(expected)) <= 1e-5, name
        unknown = httpx.post(url, json={**BODY, "model": "fr"}, headers=auth, timeout=30)
        assert unknown.status_code == 404 and "en, multi" in unknown.text, unknown.text
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=auth, timeout=30)
        assert sorted(m["id"] for m in listed.json()["data"]) == ["en", "multi"]
        replicas = set()
        for _ in range(40):  # bounded: stop as soon as both replicas have answered
            response = httpx.post(url, json={**BODY, "model": "en"}, headers=auth, timeout=30)
            assert response.status_code == 200
            assert [r["index"] for r in response.json()["results"]] in ([0, 1], [1, 0])
            replicas.add(response.headers[REPLICA_HEADER])
            if len(replicas) == 2:
                break
        assert len(replicas) == 2, replicas
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text(encoding="utf-8")[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
