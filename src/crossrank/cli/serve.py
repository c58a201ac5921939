"""``crossrank serve``: parse the options, build the app, run uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal

from ..loading import DEFAULT_MODEL
from ..serve.settings import API_KEY_ENV, ServeSettings

SERVE_INSTALL = "pip install 'crossrank[serve]'"


def add_parser(subcommands) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``crossrank``'s subparsers."""
    defaults = ServeSettings()
    serve = subcommands.add_parser(
        "serve",
        help="serve a reranker over HTTP (Cohere v1/v2, Jina and TEI rerank APIs)",
        description="Serve --model over HTTP: POST /v1/rerank (Cohere v1, Jina), /v2/rerank "
        "(Cohere v2), /rerank (TEI); GET /health, /info, /metrics. Concurrent requests are "
        "scored together in shared batches. Needs " + SERVE_INSTALL + ".",
    )
    serve.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local directory")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    serve.add_argument("--port", type=int, default=8080)
    model = serve.add_argument_group("model (as crossrank.Reranker)")
    model.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps")
    model.add_argument("--dtype", default=None, help="force float32 | float16 | bfloat16")
    model.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per (query, passage) pair (default: the length the checkpoint was trained at "
        "by crossrank train, else 512)",
    )
    model.add_argument("--batch-size", type=int, default=32, help="pairs per forward pass")
    model.add_argument("--backend", choices=("torch", "onnx", "openvino"), default="torch")
    model.add_argument(
        "--quantize", choices=("int8",), default=None, help="with --backend openvino or onnx"
    )
    model.add_argument(
        "--compile",
        action="store_true",
        help="torch backend: torch.compile the model (the first requests compile; faster after)",
    )
    model.add_argument("--long-documents", choices=("truncate", "maxp"), default="truncate")
    model.add_argument("--stride", type=int, default=128, help="maxp: tokens windows share")
    model.add_argument("--instruction", default=None, help="decoder LLM rerankers: the task")
    model.add_argument("--cache-size", type=int, default=0, help="scores to remember (LRU)")
    model.add_argument(
        "--calibration",
        default=None,
        help="'auto' (the model directory's calibration, from crossrank calibrate) or a JSON "
        "file: scores become calibrated probabilities",
    )
    limits = serve.add_argument_group("limits and batching")
    limits.add_argument("--max-documents", type=int, default=defaults.max_documents)
    limits.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    limits.add_argument(
        "--max-queued-pairs",
        type=int,
        default=defaults.max_queued_pairs,
        help="accepted, unscored pairs; beyond this a request gets 429 + Retry-After",
    )
    limits.add_argument(
        "--max-batch-tokens",
        type=int,
        default=defaults.max_batch_tokens,
        help="estimated tokens scored per worker round (large requests go in chunks)",
    )
    limits.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help="how long an idle worker waits for more requests to merge",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (except /health); default: ${API_KEY_ENV}",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    from ..ray.deployment import add_arguments as add_ray_arguments  # imports no Ray

    add_ray_arguments(serve)  # --ray, --replicas, --gpus-per-replica, ...
    return serve


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; 0 after a clean shutdown, 2 if the model fails."""
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as error:
        raise ImportError(f"crossrank serve needs FastAPI and uvicorn: {SERVE_INSTALL}") from error
    from ..reranker import Reranker

    settings = ServeSettings.from_env(
        max_documents=args.max_documents,
        max_body_bytes=args.max_body_bytes,
        max_queued_pairs=args.max_queued_pairs,
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        api_key=args.api_key,
    )
    options = dict(
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
        backend=args.backend,
        quantize=args.quantize,
        long_documents=args.long_documents,
        stride=args.stride,
        instruction=args.instruction,
        cache_size=args.cache_size,
        calibration=args.calibration,
    )
    if args.compile:  # left out otherwise: Ray actors' options stay what they were
        options["compile"] = True
    if getattr(args, "ray", False):
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
        error = failures[0]
        print(f"crossrank serve: error: the model failed to load: {error}")
        return 2
    return 0
