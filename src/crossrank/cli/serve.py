"""``crossrank serve``: parse the options, build the app, run uvicorn until SIGTERM/SIGINT.

.. code-block:: bash

    crossrank serve --model BAAI/bge-reranker-base --port 8080 --backend openvino --quantize int8
    crossrank serve --model en=BAAI/bge-reranker-base --model multi=BAAI/bge-reranker-v2-m3
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from ..loading import DEFAULT_MODEL
from ..serve.settings import API_KEY_ENV, ServeSettings
from .arguments import check_model, fail, one_line
from .options import TITLE, add_model_options, reranker_options

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
    ("max_wait_ms", float, "how long an idle worker holds a round open for more requests "
     "(default 0: what arrives while a round runs makes the next round)"),
)  # fmt: skip


HELP = "serve a reranker over HTTP (Cohere v1/v2, Jina and TEI rerank APIs)"
DESCRIPTION = (
    "Serve --model over HTTP: POST /v1/rerank (Cohere v1, Jina), /v2/rerank "
    "(Cohere v2), /rerank (TEI); GET /health, /info, /v1/models, /metrics. Concurrent requests "
    "are scored together in shared batches. Needs " + SERVE_INSTALL + "."
)


class _ModelSpecs(argparse.Action):
    """``--model`` repeated: every value in ``args.models``, the first also in ``args.model``."""

    def __call__(self, parser, namespace, value, option_string=None):
        models = list(getattr(namespace, "models", None) or [])
        models.append(value)
        namespace.models = models
        namespace.model = models[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank serve``."""
    defaults = ServeSettings()
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    parser.add_argument("--port", type=int, default=8080)
    add_model_options(parser, exclude=("model",))
    group = next(g for g in parser._action_groups if g.title == TITLE)
    group.add_argument(
        "--model",
        action=_ModelSpecs,
        dest="model",
        default=DEFAULT_MODEL,
        metavar="[NAME=]PATH",
        help=f"hub id or local checkpoint directory (default: {DEFAULT_MODEL}); repeat as "
        "--model NAME=PATH to serve several models, picked by each request's model field",
    )
    limits = parser.add_argument_group("limits and batching")
    for name, value_type, help in _LIMITS:
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=value_type, default=getattr(defaults, name), help=help)
    limits.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="answer 504 to a request not scored within this, and drop its unscored pairs",
    )
    security = parser.add_argument_group("keys and TLS")
    security.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (except /health); default: ${API_KEY_ENV}",
    )
    security.add_argument(
        "--api-key-file",
        default=None,
        help="accepted keys, one a line (# comments); reread on SIGHUP",
    )
    security.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate")
    security.add_argument("--ssl-keyfile", default=None, help="the certificate's private key")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no JSON access log line per request (on stderr)",
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="OpenTelemetry traces, exported as the OTEL_* variables say "
        "(pip install 'crossrank[otel]')",
    )
    from ..ray.deployment import add_arguments as add_ray_arguments  # imports no Ray

    add_ray_arguments(parser)  # --ray, --replicas, --gpus-per-replica, ...


def model_specs(args: argparse.Namespace):
    """``[(name or None, path), ...]`` of the ``--model`` options, checked."""
    from ..serve.models import check_model_names, parse_model_spec

    specs = [parse_model_spec(spec) for spec in getattr(args, "models", None) or [args.model]]
    check_model_names([name for name, _ in specs])
    return specs


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM/SIGINT; 0 after a clean shutdown, 2 if a model fails."""
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as error:
        raise ImportError(f"crossrank serve needs FastAPI and uvicorn: {SERVE_INSTALL}") from error
    from ..reranker import Reranker

    limits = {name: getattr(args, name) for name, _, _ in _LIMITS}
    try:
        specs = model_specs(args)
        settings = ServeSettings.from_env(
            api_key=args.api_key,
            api_key_file=args.api_key_file,
            request_timeout_s=args.request_timeout,
            **limits,
        )
    except ValueError as error:
        return fail(one_line(error))
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        return fail("--ssl-certfile and --ssl-keyfile go together")
    if getattr(args, "ray", False) and args.ssl_certfile:
        return fail("--ssl-certfile with --ray: Ray Serve's proxy serves plain HTTP; end TLS at "
                    "the ingress or load balancer in front of it")  # fmt: skip
    options = reranker_options(args)
    # A model that cannot load fails here, in one line, before the server (or Ray) starts; the
    # load itself runs in the background while /health answers "loading".
    on_ray = getattr(args, "ray", False)
    for _, path in specs:
        check_model(path, options, devices_here=not (on_ray and args.gpus_per_replica))
    if on_ray:
        from ..ray.deployment import run as run_on_ray_serve

        return run_on_ray_serve(args, settings, options, specs)
    failures = []

    def loader(path):
        return lambda: Reranker(path, **options)

    def stop_on_failure(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    served = loader(specs[0][1]) if specs[0][0] is None else {n: loader(p) for n, p in specs}
    tracing = None
    if args.otel:
        from ..serve.tracing import Tracing

        tracing = Tracing.from_env()
    try:
        app = create_app(served, settings, on_load_error=stop_on_failure, tracing=tracing)
    except ValueError as error:  # an unreadable key file
        return fail(one_line(error))
    _log_access(args.access_log)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        access_log=not args.access_log,  # the JSON line replaces uvicorn's own
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    server = uvicorn.Server(config)
    keys = app.state.crossrank.keys
    # uvicorn re-raises the signal it caught once it has shut down; with the default handler that
    # would kill the process after a clean shutdown, so the exit status would not be 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    hangup = getattr(signal, "SIGHUP", None)  # none on Windows
    previous_hup = signal.signal(hangup, lambda *_: keys.reload()) if hangup else None
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if hangup:
            signal.signal(hangup, previous_hup)
    if failures:
        return fail(f"the model failed to load: {one_line(failures[0])}")
    return 0


def _log_access(enabled: bool) -> None:
    """One JSON line per request on stderr (logger crossrank.serve.access), or none."""
    access = logging.getLogger("crossrank.serve.access")
    access.propagate = False
    access.setLevel(logging.INFO if enabled else logging.WARNING)
    if enabled and not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
