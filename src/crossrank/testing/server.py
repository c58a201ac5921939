"""Real HTTP for service tests: uvicorn on a free loopback port, JSON posts, Prometheus samples.

Needs crossrank's ``serve`` extra (fastapi, uvicorn, httpx); nothing is imported until called.

>>> from crossrank.testing import metric, post_json, serving
>>> with serving(create_app(reranker, ServeSettings()), healthy=True) as url:  # doctest: +SKIP
...     post_json(f"{url}/rerank", {"query": "q", "texts": ["a"]}).json()
...     metric(url, "crossrank_pairs_total")
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from typing import Iterator, Tuple

# Long enough for a first request that loads a model or compiles on a loaded CI machine.
REQUEST_TIMEOUT_S = 60


@contextlib.contextmanager
def serving(app, timeout: float = 120.0, healthy: bool = False) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL.

    ``app`` is e.g. ``crossrank.serve.create_app(...)``. Start-up is bounded by ``timeout``; with
    ``healthy=True`` it also waits until ``GET /health`` answers 200 (the model is loaded).

    >>> with serving(create_app(reranker, ServeSettings()), healthy=True) as url:  # doctest: +SKIP
    ...     httpx.post(f"{url}/rerank", json={"query": "q", "texts": ["a"]})
    """
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def up() -> bool:
        if not server.started:
            return False
        return not healthy or httpx.get(f"{url}/health", timeout=5).status_code == 200

    deadline = time.monotonic() + timeout
    try:
        while not up():
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the crossrank test server did not start")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def post_json(url: str, body, **kwargs):
    """``httpx.post(url, json=body)`` with a generous timeout; returns the ``httpx.Response``."""
    import httpx

    return httpx.post(url, json=body, timeout=REQUEST_TIMEOUT_S, **kwargs)


def metric(base_url: str, name: str, headers=None) -> float:
    """The value of the unlabelled sample ``name`` in the service's ``/metrics`` (Prometheus text).

    Raises ``KeyError`` when the service exports no such sample.
    """
    import httpx

    text = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


@contextlib.contextmanager
def stub_service(
    body, status: int = 200, headers=None, delay: float = 0.0
) -> Iterator[Tuple[str, list]]:
    """A real HTTP server on a free loopback port answering every POST with ``status``/``body``
    (JSON, or a str as is) after ``delay`` seconds; yields its URL and the requests it saw, as
    ``(path, headers, json body)``. For the remote client's tests: a service that misbehaves.

    >>> with stub_service({"results": []}) as (url, seen):  # doctest: +SKIP
    ...     httpx.post(url + "/v1/rerank", json={"query": "q"})
    """
    seen = []
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            seen.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
            stop.wait(delay)  # a slow service: answers after `delay` or when the test ends
            payload = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
