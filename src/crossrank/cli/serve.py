"""``crossrank serve``: parse the options, build the app, run uvicorn until SIGTERM/SIGINT.

.. code-block:: bash

    crossrank serve --model BAAI/bge-reranker-base --port 8080 --backend openvino --quantize int8
"""

from __future__ import annotations

import argparse
import signal

from ..serve.settings import API_KEY_ENV, ServeSettings
from .arguments import check_model, fail, one_line
from .options import add_model_options, reranker_options

SERVE_INSTALL = "pip install 'crossrank[serve]'"
# The limits and batching options, by ServeSettings field (--max-documents: max_documents); the
# field gives the default.
_LIMITS = (
    ("max_documents", int, None),
    ("max_body_bytes", int, None),
    ("max_queued_pairs", int, "accepted, unscored pairs; beyond this a request gets 429 + "
     "Retry-After"),
    ("max_batch_tokens", int, "estimated tokens scored per worker round (large requests go "
     "in chunks)"),
    ("max_wait_ms", float, "how long an idle worker waits for more requests to merge"),
)  # fmt: skip


HELP = "serve a reranker over HTTP (Cohere v1/v2, Jina and TEI rerank APIs)"
DESCRIPTION = (
    "Serve --model over HTTP: POST /v1/rerank (Cohere v1, Jina), /v2/rerank "
    "(Cohere v2), /rerank (TEI); GET /health, /info, /metrics. Concurrent requests are "
    "scored together in shared batches. Needs " + SERVE_INSTALL + "."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank serve``."""
    defaults = ServeSettings()
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=8080)
    add_model_options(parser)
    limits = parser.add_argument_group("limits and batching")
    for name, value_type, help in _LIMITS:
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=value_type, default=getattr(defaults, name), help=help)
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (except /health); default: ${API_KEY_ENV}",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    from ..ray.deployment import add_arguments as add_ray_arguments  # imports no Ray

    add_ray_arguments(parser)  # --ray, --replicas, --gpus-per-replica, ...


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; 0 after a clean shutdown, 2 if the model fails."""
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as error:
        raise ImportError(f"crossrank serve needs FastAPI and uvicorn: {SERVE_INSTALL}") from error
    from ..reranker import Reranker

    limits = {name: getattr(args, name) for name, _, _ in _LIMITS}
    settings = ServeSettings.from_env(api_key=args.api_key, **limits)
    options = reranker_options(args)
    # A model that cannot load fails here, in one line, before the server (or Ray) starts; the
    # load itself runs in the background while /health answers "loading".
    on_ray = getattr(args, "ray", False)
    check_model(args.model, options, devices_here=not (on_ray and args.gpus_per_replica))
    if on_ray:
        from ..ray.deployment import run as run_on_ray_serve

        return run_on_ray_serve(args, settings, options)
    failures = []

    def load() -> Reranker:
        return Reranker(args.model, **options)

    def stop_on_failure(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(load, settings, on_load_error=stop_on_failure)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, lifespan="on"
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it caught once it has shut down; with the default handler that
    # would kill the process after a clean shutdown, so the exit status would not be 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failures:
        return fail(f"the model failed to load: {one_line(failures[0])}")
    return 0
