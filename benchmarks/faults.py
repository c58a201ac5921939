"""The fault phases of :mod:`benchmarks.soak`: clients that hang up, SIGTERM under load, a Ray
replica killed, each bounded in requests and in time, over loopback; and the request they send.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from benchmarks.loadgen import Server, free_port

ROUTE = "/v1/rerank"
RETRIES = 3  # a client's retries of a request that failed (Ray phase)
REPLICA_HEADER = "x-crossrank-replica"
REPLACE_TIMEOUT_S = 180  # how long the Ray phase waits to see the killed replica replaced


TIMING_HEADERS = ("x-queue-time", "x-tokenization-time", "x-inference-time")


async def ask(
    client, url: str, body: dict, timings: Optional[dict] = None
) -> Tuple[Optional[int], float]:
    """(status or None when the transport failed, seconds); ``timings`` gets the server's own
    timing headers (ms) of an answered request."""
    import httpx

    started = time.perf_counter()
    try:
        response = await client.post(url + ROUTE, json=body)
        if timings is not None:
            timings.update(
                {h: float(response.headers[h]) for h in TIMING_HEADERS if h in response.headers}
            )
        ok = response.status_code != 200 or len(response.json()["results"]) == len(
            body["documents"]
        )
        return (response.status_code if ok else -1), time.perf_counter() - started
    except (httpx.TransportError, ValueError):
        return None, time.perf_counter() - started


async def disconnects(url: str, port: int, work: List[dict], count: int, parallel: int) -> int:
    """``count`` clients that send a request and hang up before the answer; returns how many
    requests were sent in full."""
    sent = 0
    gate = asyncio.Semaphore(parallel)
    rng = random.Random(0)

    async def one(i: int) -> None:
        nonlocal sent
        body = json.dumps(work[i % len(work)]).encode()
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 10
                )
            except (OSError, asyncio.TimeoutError):
                return
            writer.write(
                f"POST {ROUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            sent += 1
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # mid-flight: queued or being scored
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), 600)
    return sent


async def sigterm_under_load(server: Server, work: List[dict], clients: int, after_s: float):
    """Closed-loop clients; SIGTERM after ``after_s``; what each request got."""
    import httpx

    counts = {"answered_200": 0, "refused": 0, "lost": 0, "other": 0}
    stop = time.perf_counter() + after_s + 60
    signalled = False
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop and server.process.poll() is None:
                try:
                    response = await client.post(server.url + ROUTE, json=work[i % len(work)])
                except httpx.ConnectError:
                    counts["refused"] += 1  # not accepted: the listener is closed
                    await asyncio.sleep(0.05)
                    continue
                except httpx.TransportError:
                    counts["lost"] += 1  # accepted and never answered
                    continue
                if response.status_code == 200:
                    counts["answered_200"] += 1
                elif response.status_code == 503 and signalled:
                    counts["refused"] += 1
                else:
                    counts["other"] += 1
                i += clients

        async def terminate() -> None:
            nonlocal signalled
            await asyncio.sleep(after_s)
            signalled = True
            server.process.send_signal(signal.SIGTERM)

        await asyncio.gather(terminate(), *(worker(k) for k in range(clients)))
    counts["exit_status"] = await asyncio.to_thread(server.process.wait, 120)
    return counts


async def ray_replica_killed(url: str, work: List[dict], clients: int, seconds: float) -> dict:
    """Closed-loop clients on Ray Serve; one replica SIGKILLed a third of the way in."""
    import os

    import httpx

    counts = {"answered_200": 0, "retried": 0, "lost": 0}
    pids_before, pids_after = set(), set()
    killed: List[int] = []
    started = time.perf_counter()
    stop = started + seconds
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                for attempt in range(RETRIES + 1):
                    try:
                        response = await client.post(url + ROUTE, json=work[i % len(work)])
                        if response.status_code == 200:
                            counts["answered_200"] += 1
                            _, _, pid = response.headers.get(REPLICA_HEADER, "::").rpartition(":")
                            (pids_after if killed else pids_before).add(pid)
                            break
                    except httpx.TransportError:
                        pass
                    counts["retried"] += attempt < RETRIES
                    await asyncio.sleep(0.5 * (attempt + 1))
                else:
                    counts["lost"] += 1
                i += clients

        async def kill_one() -> None:
            await asyncio.sleep(seconds / 3)
            victim = next((p for p in sorted(pids_before) if p.isdigit()), None)
            if victim is not None:
                killed.append(int(victim))
                os.kill(int(victim), signal.SIGKILL)

        await asyncio.gather(kill_one(), *(worker(k) for k in range(clients)))
        replaced_by = time.perf_counter() + REPLACE_TIMEOUT_S  # Ray restarts it: wait, bounded
        while killed and not pids_after - pids_before and time.perf_counter() < replaced_by:
            try:
                response = await client.post(url + ROUTE, json=work[0])
                pids_after.add(response.headers.get(REPLICA_HEADER, "::").rpartition(":")[2])
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        replaced_s = time.perf_counter() - started - seconds / 3
    new = pids_after - pids_before
    return {**counts, "killed_pid": killed[0] if killed else None,
            "replicas_before": len(pids_before), "new_replica_seen": bool(new),
            "replaced_within_s": round(replaced_s, 1) if new else None}  # fmt: skip


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def ray_phase(model: str, work: List[dict], args, logs: Path) -> dict:
    """``crossrank serve --ray --replicas 2`` with one replica killed under load."""
    port = free_port()
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--ray", "--replicas", "2",
               "--model", model, "--port", str(port), "--device", args.device,
               "--max-length", str(args.max_length)]  # fmt: skip
    server = Server("crossrank --ray", command, port, "/health", logs / "ray.log")
    try:
        server.wait_ready()
        return asyncio.run(ray_replica_killed(server.url, work, args.clients, args.ray_seconds))
    finally:
        server.stop()
