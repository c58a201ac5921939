"""The load generator behind the serve benchmarks: a server subprocess on a loopback port, and
closed-loop clients (httpx or aiohttp) sending bounded numbers of requests at a concurrency level,
retrying 429s after Retry-After (bounded) and counting what was lost.

    >>> server = Server("crossrank serve", command, port, "/health", log)   # doctest: +SKIP
    >>> row, scores = asyncio.run(level_run(server, "/v1/rerank", body, parse, requests, 8, args))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple

from benchmarks.common import percentile

MAX_RETRIES_429 = 50
START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(name: str, level: int, latencies: List[float], pairs: int, seconds: float, **counts):
    return {
        "contender": name,
        "concurrency": level,
        "requests": len(latencies),
        "pairs_per_s": round(pairs / seconds, 3) if seconds else 0.0,
        # nearest rank, as the recorded runs (0 when no request finished)
        "p50_ms": round(1000 * percentile(latencies, 50, "nearest"), 1) if latencies else 0.0,
        "p99_ms": round(1000 * percentile(latencies, 99, "nearest"), 1) if latencies else 0.0,
        **counts,
    }


# ---------------------------------------------------------------------- in process (the ceiling)


def by_index(pairs: List[Tuple[int, float]], n: int) -> List[float]:
    scores = [float("nan")] * n
    for index, score in pairs:
        scores[index] = score
    return scores


# ---------------------------------------------------------------------- servers


class Server:
    """A server subprocess on a free loopback port, stopped with SIGTERM."""

    def __init__(self, name, command: List[str], port: int, health: str, log: Path, env=None):
        self.name, self.port, self.health = name, port, health
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log, "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}); see {self.log.name}"
                )
            try:
                if httpx.get(self.url + self.health, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not become healthy in {START_TIMEOUT_S} s")

    def stop(self) -> Optional[int]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.log.close()
        return self.process.returncode


async def _post(client, url: str, body: dict) -> Tuple[Optional[int], dict, object]:
    """(status or None when the transport failed, headers, parsed body) with httpx or aiohttp."""
    if client.__class__.__module__.startswith("aiohttp"):
        import aiohttp

        try:
            async with client.post(url, json=body) as response:
                return response.status, response.headers, await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None, {}, None
    import httpx

    try:
        response = await client.post(url, json=body)
        return response.status_code, response.headers, response.json()
    except (httpx.HTTPError, ValueError):
        return None, {}, None


async def _one(client, url: str, body: dict, n_docs: int, parse) -> Tuple[Optional[list], int]:
    """→ (scores by index or None if lost, number of 429 answers)."""
    refused = 0
    for _ in range(MAX_RETRIES_429):
        status, headers, answer = await _post(client, url, body)
        if status == 429:
            refused += 1
            await asyncio.sleep(float(headers.get("retry-after", "1")))
            continue
        if status != 200:
            return None, refused
        scores = by_index(parse(answer), n_docs)
        return (scores if all(s == s for s in scores) else None), refused
    return None, refused


def client_for(level: int, args):
    """The load generator's HTTP client: httpx, or aiohttp (``--client aiohttp``: less of the
    shared CPU per request, so more of what is timed is the server's)."""
    if args.client == "aiohttp":
        import aiohttp

        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=level),
            timeout=aiohttp.ClientTimeout(total=args.request_timeout),
        )
    import httpx

    limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)
    return httpx.AsyncClient(timeout=args.request_timeout, limits=limits)


async def level_run(server: Server, route: str, make_body, parse, requests, level: int, args):
    latencies, pairs, refused, lost, scores = [], 0, 0, 0, {}
    next_index = 0
    started = time.perf_counter()

    async with client_for(level, args) as client:

        async def worker() -> None:
            nonlocal next_index, pairs, refused, lost
            while next_index < args.requests and time.perf_counter() - started < args.max_seconds:
                i = next_index
                next_index += 1
                query, docs = requests[i % len(requests)]
                t = time.perf_counter()
                got, n429 = await _one(
                    client, server.url + route, make_body(query, docs), len(docs), parse
                )
                refused += n429
                if got is None:
                    lost += 1
                    continue
                latencies.append(time.perf_counter() - t)
                pairs += len(docs)
                scores[i % len(requests)] = got

        await asyncio.gather(*(worker() for _ in range(level)))
    seconds = time.perf_counter() - started
    return summary(
        server.name, level, latencies, pairs, seconds, http_429=refused, lost=lost
    ), scores


def rss_mib(pid: int) -> Optional[float]:
    """Resident memory of a process (Linux /proc), MiB; None where unreadable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def cpu_times(pid: int) -> Optional[Tuple[float, float]]:
    """(the process's CPU seconds, the host's stolen CPU seconds) so far, Linux /proc; None where
    unreadable. Steal is time a virtual machine's CPUs waited for the host: a window in which it
    rises, or the server gets less CPU, slows the server whatever its own code does."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        host = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # stat fields after the name: state is the 1st, utime the 12th, stime the 13th
    own = (int(fields[11]) + int(fields[12])) / tick
    steal = int(host[8]) / tick if len(host) > 8 else 0.0
    return own, steal


def metric(url: str, sample: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return 0.0


def cpu_split(server: Optional[str], client: Optional[str]) -> Tuple[List[int], List[int]]:
    """The CPUs of the server and of this load generator: the given lists ("0,1" or "0-2"), or
    by default all but the last CPU this process may use for the server and the last for the client
    (one CPU: both share it)."""

    def parse(text: str) -> List[int]:
        cpus: List[int] = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus += list(range(int(low), int(high or low) + 1))
        return cpus

    available = sorted(os.sched_getaffinity(0))
    default_server = available[:-1] or available
    return (
        parse(server) if server else default_server,
        parse(client) if client else available[-1:],
    )
