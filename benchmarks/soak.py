"""Soak and fault figures of ``crossrank serve`` over loopback: hours-style stability in minutes.

Phases (each bounded in requests and in time):

1. capacity: closed-loop clients for ``--capacity-seconds``, then (``--capacity open``, the
   default) open-loop steps from 50% of that figure up, ``--capacity-step-seconds`` each: the
   highest rate the server keeps up with, its p99 within twice the lightest step's, when requests
   arrive one by one as in the soak.
2. soak: open loop at ``--load`` (default 80%) of that rate for ``--minutes``: resident memory of
   the server process sampled every few seconds after ``--warmup-minutes`` of the same load, p99
   of every window (a minute, or a tenth of a shorter run) of the measured part, first and last
   compared, requests lost (no valid answer; must be 0).
3. disconnects: ``--disconnects`` clients send a large request and close the connection before the
   answer; afterwards the queue must be empty (no leaked entries), the server must count them, its
   memory must be back near the soak's, and later requests must be answered as before.
4. SIGTERM under load: closed-loop clients, then SIGTERM: every request the server accepted is
   answered 200, later ones are refused (connection refused or 503), the exit status is 0.

5. with ``--ray-kill``: ``crossrank serve --ray --replicas 2`` under closed-loop load, one
   replica process killed (SIGKILL, its pid read from ``X-Crossrank-Replica``): every request
   answered (the client retries a failed one up to :data:`RETRIES` times), none lost, and answers
   from a new replica process afterwards.

With ``--pin`` the server runs pinned to all but the last CPU (its torch threads as many) and this
load generator to the last one (``--server-cpus``, ``--client-cpus``), so that the client's bursts
cannot stall the server's OpenMP threads; the Ray phase runs unpinned. On 2 cores this did not
steady the per-minute p99 (benchmarks/RESULTS.md, Serve), so it is not the default.

    python -m benchmarks.soak --model minilm --synthetic                 # the 10-minute soak
    python -m benchmarks.soak --model tiny --synthetic --minutes 0.2 --warmup-minutes 0.05 \
        --disconnects 50 --capacity-seconds 3 --capacity-step-seconds 2   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks import workload
from benchmarks.common import add_output_argument, percentile, write_result
from benchmarks.faults import ask, disconnects, ray_phase, sigterm_under_load, wait_until
from benchmarks.loadgen import Server, cpu_split, cpu_times, free_port, metric, rss_mib

MAX_SOAK_REQUESTS = 1_000_000  # the open loop never schedules more than this
RSS_EVERY_S = 2.0
# open-loop capacity: offered rates as shares of the closed-loop figure, and the share of the
# offered rate a step must be answered at to count as kept up with
CAPACITY_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
KEEP_UP = 0.97
# ... and how far its p99 may rise over the lightest step's. Throughput alone finds no limit: a
# deeper queue makes larger, cheaper rounds, so a server keeps answering what it is offered well
# past the point where its latency climbs
LATENCY_KNEE = 2.0


def bodies(requests: List[Tuple[str, List[str]]]) -> List[dict]:
    return [{"query": q, "documents": docs} for q, docs in requests]


async def capacity(url: str, work: List[dict], seconds: float, clients: int) -> float:
    """Requests/s of ``clients`` closed-loop clients over ``seconds``."""
    import httpx

    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.perf_counter() < stop:
                status, _ = await ask(client, url, work[i % len(work)])
                done += status == 200
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return done / (time.perf_counter() - started)


def open_loop_capacity(url: str, pid: int, work: List[dict], start_rate: float, step_s: float):
    """The highest open-loop rate the server keeps up with, stepping up from ``start_rate``.

    Closed-loop clients keep several requests queued, so the server's rounds are larger, and
    cheaper per pair, than those of requests arriving one by one: 80% of a closed-loop capacity can
    sit at the open loop's own limit. Each step offers a rate for ``step_s``; a step is kept while
    the server answers at least :data:`KEEP_UP` of it (a growing backlog stretches the time to the
    last answer) with a p99 within :data:`LATENCY_KNEE` times the first step's: the knee of the
    latency curve. Returns the last kept step's achieved rate and every step's row.
    """
    steps, kept = [], None
    for factor in CAPACITY_STEPS:
        rate = factor * start_rate
        step = asyncio.run(soak(url, pid, work, rate, step_s))
        light = steps[0]["p99_ms"] if steps else step["p99_ms"]
        keeps_up = (
            step["achieved_per_s"] >= KEEP_UP * rate
            and step["lost"] == 0
            and step["p99_ms"] is not None
            and step["p99_ms"] <= LATENCY_KNEE * light
        )
        steps.append(
            {
                "offered_per_s": round(rate, 2),
                "achieved_per_s": step["achieved_per_s"],
                "p99_ms": step["p99_ms"],
                "queue_pairs_max": max(
                    (v for v in step["queue_pairs_max_by_window"] if v is not None), default=None
                ),
                "server_cpu_per_s": step["server_cpu_per_s"],
                "keeps_up": keeps_up,
            }
        )
        print(json.dumps(steps[-1]), flush=True)
        if not keeps_up:
            break
        kept = step["achieved_per_s"]
    return kept if kept is not None else steps[0]["achieved_per_s"], steps


def achieved_rate(answered: int, seconds_to_last_answer: float, latencies: List[float]) -> float:
    """Answers per second of an open-loop run, over the time from the first send to the last
    answer less one median latency (the last request's own): the offered rate while the server
    keeps up; above its limit the backlog's drain stretches that time and this falls to the rate
    it sustains."""
    typical = statistics.median(latencies) if latencies else 0.0
    return round(answered / max(1e-9, seconds_to_last_answer - typical), 2)


async def soak(
    url: str, pid: int, work: List[dict], rate: float, seconds: float, warmup_s: float = 0.0
) -> dict:
    """Open loop at ``rate`` requests/s for ``warmup_s`` + ``seconds``: latencies per window of
    the measured part, RSS samples. The warm-up's requests count as sent and lost or not, but
    neither its latencies nor its memory (caches and allocator pools fill then) are measured."""
    import httpx

    windows = max(2, min(10, int(seconds // 60) or 10))
    window_s = seconds / windows
    latencies: List[List[float]] = [[] for _ in range(windows)]
    statuses: Dict[str, int] = {}
    rss: List[Tuple[float, float]] = []
    queued: List[List[float]] = [[] for _ in range(windows)]  # the queue's pairs, sampled
    # per request: the server's own queue and inference time (its timing headers), to tell a
    # window slowed by a backlog from one whose forwards ran slow
    server_ms: List[List[dict]] = [[] for _ in range(windows)]
    cpu: List[Tuple[float, Tuple[float, float]]] = []  # (time, (server CPU s, host steal s))
    total = min(int(rate * (warmup_s + seconds)), MAX_SOAK_REQUESTS)
    started = time.perf_counter()
    measured_from = started + warmup_s
    last_answer = started
    all_took: List[float] = []

    async def sample(client) -> None:
        """Every RSS_EVERY_S of the measured part: the server's memory and its queue depth (a
        queue that grows within a window means the load is above what the server keeps up with)."""
        while (now := time.perf_counter() - measured_from) < seconds:
            value = rss_mib(pid)
            if now >= 0:
                if value is not None:
                    rss.append((now, value))
                times = cpu_times(pid)
                if times is not None:
                    cpu.append((now, times))
                response = await client.get(url + "/metrics")
                depth = [
                    float(line.split()[1])
                    for line in response.text.splitlines()
                    if line.startswith("crossrank_queue_pairs ")
                ]
                queued[min(windows - 1, int(now / window_s))] += depth
            await asyncio.sleep(RSS_EVERY_S)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=256)) as client:

        async def one(i: int) -> None:
            nonlocal last_answer
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            timings: dict = {}
            status, took = await ask(client, url, work[i % len(work)], timings)
            last_answer = max(last_answer, time.perf_counter())
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                all_took.append(took)
            if status == 200 and due >= measured_from:
                window = min(windows - 1, int((due - measured_from) / window_s))
                latencies[window].append(took)
                server_ms[window].append(timings)

        sampler = asyncio.ensure_future(sample(client))
        await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(total))), warmup_s + seconds + 300
        )
        sampler.cancel()
    first, last = latencies[0], latencies[-1]
    every = [t for window in latencies for t in window]

    def p99_ms(values: List[float]) -> Optional[float]:
        return round(1000 * percentile(values, 99, "nearest"), 1) if values else None

    def p99_header(window: List[dict], header: str) -> Optional[float]:
        values = [t[header] for t in window if header in t]
        return round(percentile(values, 99, "nearest"), 1) if values else None

    def per_window(which: int, start: float, length: float) -> Optional[float]:
        """CPU seconds per second from ``start`` for ``length`` seconds of the measured part: the
        server's (0) or the host's steal (1)."""
        inside = [(t, v[which]) for t, v in cpu if start <= t <= start + length]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 3)

    return {
        "requests": total,
        "rate_per_s": round(rate, 2),
        "achieved_per_s": achieved_rate(statuses.get("200", 0), last_answer - started, all_took),
        "warmup_s": warmup_s,
        "statuses": statuses,
        "lost": sum(n for s, n in statuses.items() if s not in ("200", "429")),
        "p99_first_ms": p99_ms(first),
        "p99_last_ms": p99_ms(last),
        "p99_ms": p99_ms(every),
        "p99_by_window_ms": [p99_ms(window) for window in latencies],
        "requests_by_window": [len(window) for window in latencies],
        "queue_pairs_max_by_window": [max(window, default=None) for window in queued],
        "server_p99_queue_by_window_ms": [p99_header(w, "x-queue-time") for w in server_ms],
        "server_p99_inference_by_window_ms": [p99_header(w, "x-inference-time") for w in server_ms],
        "server_cpu_per_s": per_window(0, 0.0, seconds),
        "server_cpu_per_s_by_window": [
            per_window(0, k * window_s, window_s) for k in range(windows)
        ],
        "host_steal_per_s_by_window": [
            per_window(1, k * window_s, window_s) for k in range(windows)
        ],
        "rss_after_warmup_mib": round(rss[0][1], 1) if rss else None,
        "rss_end_mib": round(rss[-1][1], 1) if rss else None,
        "rss_max_mib": round(max(v for _, v in rss), 1) if rss else None,
        "window_s": round(window_s, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workload.add_model_arguments(parser, default="minilm")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (measured)")
    parser.add_argument(
        "--warmup-minutes", type=float, default=1.0, help="open loop before the measured soak"
    )
    parser.add_argument("--load", type=float, default=0.8, help="share of measured capacity")
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument(
        "--capacity",
        choices=("open", "closed"),
        default="open",
        help="the capacity --load is a share of: open-loop steps (default) or closed-loop clients",
    )
    parser.add_argument("--capacity-step-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--candidates", type=int, default=20, help="documents per request")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--disconnects", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server and load generator on separate CPUs (see --server-cpus, --client-cpus)",
    )
    parser.add_argument(
        "--server-cpus",
        default=None,
        help="CPUs of the server, e.g. 0 or 0-2 (default: all but the last)",
    )
    parser.add_argument(
        "--client-cpus", default=None, help="CPUs of this load generator (default: the last)"
    )
    parser.add_argument("--ray-kill", action="store_true", help="also the Ray replica phase")
    parser.add_argument("--ray-seconds", type=float, default=60.0, help="Ray phase length")
    add_output_argument(parser)
    args = parser.parse_args(argv)
    import httpx

    model = workload.resolve_model(args.model)
    work = bodies(workload.candidates(args.queries, args.candidates, synthetic=args.synthetic))
    logs = Path(tempfile.mkdtemp(prefix="crossrank-soak-"))
    port = free_port()
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", model,
               "--port", str(port), "--device", args.device, "--max-length", str(args.max_length),
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    everywhere = os.sched_getaffinity(0)
    server_cpus, client_cpus = sorted(everywhere), sorted(everywhere)
    env = None
    if args.pin:
        server_cpus, client_cpus = cpu_split(args.server_cpus, args.client_cpus)
        threads = str(len(server_cpus))  # torch's threads: one per CPU the server may use
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        command = ["taskset", "-c", ",".join(map(str, server_cpus))] + command
    server = Server("crossrank", command, port, "/health", logs / "soak.log", env=env)
    os.sched_setaffinity(0, client_cpus)
    rows, notes = [], []
    try:
        server.wait_ready()
        asyncio.run(capacity(server.url, work, min(3.0, args.capacity_seconds), args.clients))
        closed_rate = asyncio.run(capacity(server.url, work, args.capacity_seconds, args.clients))
        rate, steps = closed_rate, []
        if args.capacity == "open":
            rate, steps = open_loop_capacity(
                server.url, server.process.pid, work, closed_rate, args.capacity_step_seconds
            )
        soaked = asyncio.run(
            soak(
                server.url,
                server.process.pid,
                work,
                args.load * rate,
                60 * args.minutes,
                60 * args.warmup_minutes,
            )  # fmt: skip
        )
        drift = None
        if soaked["rss_after_warmup_mib"]:
            drift = (soaked["rss_end_mib"] - soaked["rss_after_warmup_mib"]) / soaked[
                "rss_after_warmup_mib"
            ]
        p99_change = None
        if soaked["p99_first_ms"] and soaked["p99_last_ms"]:
            p99_change = soaked["p99_last_ms"] / soaked["p99_first_ms"] - 1
        rows += [{"phase": "capacity step", **step} for step in steps]
        rows.append({"phase": "soak", "capacity_rps": round(rate, 2),
                     "closed_loop_capacity_rps": round(closed_rate, 2),
                     "rss_drift": None if drift is None else round(drift, 4),
                     "p99_last_vs_first": None if p99_change is None else round(p99_change, 4),
                     **{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                        for k, v in soaked.items()}})  # fmt: skip
        before = rss_mib(server.process.pid)
        sent = asyncio.run(disconnects(server.url, port, work, args.disconnects, 50))
        drained = wait_until(lambda: metric(server.url, "crossrank_queue_pairs") == 0, 300)
        gone = sum(
            float(line.split()[1])
            for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines()
            if line.startswith("crossrank_disconnects_total{")
        )
        after = rss_mib(server.process.pid)
        later = asyncio.run(soak(server.url, server.process.pid, work, 0.5 * rate, 5.0))
        rows.append({"phase": "disconnects", "clients": args.disconnects, "sent": sent,
                     "queue_empty_after": drained, "counted_disconnects": gone,
                     "rss_before_mib": before and round(before, 1),
                     "rss_after_mib": after and round(after, 1),
                     "later_requests": later["requests"], "later_lost": later["lost"],
                     "later_p99_ms": later["p99_ms"]})  # fmt: skip
        counts = asyncio.run(sigterm_under_load(server, work, args.clients, 2.0))
        rows.append({"phase": "sigterm", **counts})  # refused: connection attempts turned away
    finally:
        server.stop()
        os.sched_setaffinity(0, everywhere)
    if args.ray_kill:
        rows.append({"phase": "ray_replica_killed", **ray_phase(model, work, args, logs)})
    notes.append(
        f"loopback only; server on CPUs {server_cpus}, the load generator on CPUs {client_cpus}"
        + ("; the Ray phase unpinned" if args.pin else "")
    )
    settings = {"model": args.model, "minutes": args.minutes, "load": args.load,
                "capacity": args.capacity, "capacity_step_seconds": args.capacity_step_seconds,
                "warmup_minutes": args.warmup_minutes, "queries": args.queries,
                "clients": args.clients, "documents_per_request": args.candidates,
                "max_length": args.max_length, "device": args.device,
                "synthetic": args.synthetic, "disconnects": args.disconnects,
                "ray_kill": args.ray_kill, "pin": args.pin, "server_cpus": server_cpus,
                "client_cpus": client_cpus}  # fmt: skip
    title = "crossrank serve soak: memory drift, p99 over time, disconnects, SIGTERM under load"
    write_result("soak", title, settings, {"rows": rows}, args.output, notes, argv)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
