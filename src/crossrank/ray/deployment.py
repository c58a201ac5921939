"""The ``crossrank serve`` app replicated with Ray Serve: one URL, requests spread over replicas.

Each replica loads one Reranker and runs the very app of ``crossrank serve``
(:func:`crossrank.serve.create_app`: same routes, API key, limits, metrics and dynamic batching),
wrapped with ``serve.ingress``. Responses carry ``X-Crossrank-Replica`` (host:pid of the replica
that answered).

>>> from ray import serve                                                  # doctest: +SKIP
>>> from crossrank.ray import serve_deployment                             # doctest: +SKIP
>>> serve.run(serve_deployment("BAAI/bge-reranker-base", num_replicas=4, num_gpus_per_replica=1),
...           route_prefix="/")                                            # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from typing import Any, Dict, Mapping, Optional, Union

from crossrank.inputs import check_count
from crossrank.loading import DEFAULT_MODEL
from crossrank.ray.workers import check_model, check_shares, cpu_threads, load_reranker

REPLICA_HEADER = "X-Crossrank-Replica"


def _import_serve():
    try:
        from ray import serve  # the real Ray: absolute import, never this package

        import crossrank.serve.app  # noqa: F401  (FastAPI, uvicorn: the serve extra)
    except ImportError as error:
        from crossrank.ray.extra import RAY_INSTALL

        raise ImportError(
            f"crossrank.ray.serve_deployment needs Ray Serve and FastAPI: {RAY_INSTALL} ({error})"
        ) from None
    return serve


def serve_deployment(
    model: Union[str, os.PathLike, Mapping[str, Union[str, os.PathLike]]] = DEFAULT_MODEL,
    *,
    settings=None,
    reranker_kwargs: Optional[Dict[str, Any]] = None,
    num_replicas: int = 1,
    num_gpus_per_replica: float = 0,
    num_cpus_per_replica: float = 1,
    name: str = "crossrank",
    ray_actor_options: Optional[Dict[str, Any]] = None,
):
    """A Ray Serve application (``serve.run`` it) of ``num_replicas`` copies of the rerank service.

    Args:
        model: hub id or checkpoint directory, loadable on every node; or a dict name → path
            to serve several models (requests pick one by their ``model`` field).
        settings: :class:`crossrank.serve.ServeSettings` (limits, batching, API key); default:
            its defaults with ``CROSSRANK_API_KEY``.
        reranker_kwargs: passed to :class:`crossrank.Reranker` in each replica.
        num_gpus_per_replica: GPUs each replica reserves (``0.5`` packs two on a GPU).
        num_cpus_per_replica: CPUs each replica reserves; on CPU also its torch threads.

    Example:
        >>> app = serve_deployment("BAAI/bge-reranker-base", num_replicas=2)  # doctest: +SKIP
        >>> serve.run(app, route_prefix="/")                                  # doctest: +SKIP
    """
    serve = _import_serve()
    from crossrank.serve import ServeSettings

    models = (
        {name: check_model(path) for name, path in model.items()}
        if isinstance(model, Mapping)
        else {None: check_model(model)}
    )
    check_count(num_replicas, "num_replicas", 1)
    check_shares(
        num_gpus_per_replica=num_gpus_per_replica, num_cpus_per_replica=num_cpus_per_replica
    )
    settings = settings if settings is not None else ServeSettings.from_env()
    if not isinstance(settings, ServeSettings):
        raise TypeError(f"settings must be a ServeSettings, got {type(settings).__name__}")
    kwargs = dict(reranker_kwargs or {})
    threads = cpu_threads(num_gpus_per_replica, num_cpus_per_replica)

    def build_app():  # runs in each replica: the model loads before the replica takes traffic
        from crossrank.serve import create_app

        loaded = {name: load_reranker(path, kwargs, threads) for name, path in models.items()}
        app = create_app(loaded[None] if None in loaded else loaded, settings)
        replica = f"{socket.gethostname()}:{os.getpid()}"

        @app.middleware("http")
        async def tag_replica(request, call_next):
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app

    options = dict(ray_actor_options or {})
    options.setdefault("num_cpus", num_cpus_per_replica)
    if num_gpus_per_replica:
        options.setdefault("num_gpus", num_gpus_per_replica)
    deployment = serve.deployment(
        serve.ingress(build_app)(), name=name, num_replicas=num_replicas, ray_actor_options=options
    )
    return deployment.bind()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``crossrank serve`` options for Ray Serve: --ray, --replicas, --gpus-per-replica, ..."""
    group = parser.add_argument_group("Ray Serve (pip install 'crossrank[ray]')")
    group.add_argument("--ray", action="store_true", help="replicate the service with Ray Serve")
    group.add_argument("--replicas", type=int, default=1, help="with --ray: model copies")
    group.add_argument("--gpus-per-replica", type=float, default=0)
    group.add_argument("--cpus-per-replica", type=float, default=1)
    group.add_argument(
        "--ray-address", default=None, help="a running cluster ('auto', HOST:PORT); default: local"
    )


def run(args: argparse.Namespace, settings, reranker_kwargs: Dict[str, Any], specs=None) -> int:
    """Deploy on Ray Serve at --host:--port; on SIGTERM/SIGINT remove it and exit 0.

    ``specs``: ``[(name or None, path), ...]`` of several ``--model NAME=PATH`` options."""
    serve = _import_serve()
    import ray

    model = args.model if not specs or specs[0][0] is None else dict(specs)
    app = serve_deployment(
        model,
        settings=settings,
        reranker_kwargs=reranker_kwargs,
        num_replicas=args.replicas,
        num_gpus_per_replica=args.gpus_per_replica,
        num_cpus_per_replica=args.cpus_per_replica,
    )
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:  # a local Ray on the loopback, without the dashboard web server
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")
    # After ray.init, which installs a native SIGTERM handler that aborts the process.
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name="crossrank", route_prefix="/")
        print(
            f"crossrank serve --ray: {args.replicas} replica(s) at http://{args.host}:{args.port}",
            flush=True,
        )
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        if args.ray_address:  # a shared cluster: remove this app only, leave Serve and Ray up
            serve.delete("crossrank")
        else:
            serve.shutdown()
        ray.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
