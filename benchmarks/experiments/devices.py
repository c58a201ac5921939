"""One CPU replica with every thread vs several replicas sharing the threads (``device=[...]``).

Each layout runs in its own process on the same pairs (SciFact test queries x BM25 candidates),
one ``compute_score`` call, best of ``--repeat``; scores are checked equal to the first layout's.

    python -m benchmarks.experiments.devices                # MiniLM-sized model, 128 pairs
    python -m benchmarks.experiments.devices --model runs/bench-model --pairs 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.common import ROOT
from benchmarks.workload import bm25_candidates, minilm_cross_encoder

LAYOUTS = {"1 replica x all threads": ["cpu"], "2 replicas x half the threads": ["cpu", "cpu"]}


def run_layout(devices, model, pairs, repeat, batch_size) -> dict:
    import torch

    from crossrank import Reranker

    reranker = Reranker(
        model,
        device=devices if len(devices) > 1 else devices[0],
        max_length=512,
        batch_size=batch_size,
    )
    reranker.compute_score(pairs[:4])  # warm-up
    best, scores = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        scores = reranker.compute_score(pairs)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "scores": scores, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--layout", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    model = args.model or str(minilm_cross_encoder())
    lists = bm25_candidates(max(1, args.pairs // 32), top_k=32, seed=2)
    pairs = [[q, p] for q, ps in lists for p in ps][: args.pairs]
    if args.layout:
        result = run_layout(LAYOUTS[args.layout], model, pairs, args.repeat, args.batch_size)
        print(json.dumps(result))
        return
    rows = {}
    for name in LAYOUTS:
        out = (
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.experiments.devices",
                    "--layout",
                    name,
                    "--model",
                    model,
                    "--pairs",
                    str(args.pairs),
                    "--repeat",
                    str(args.repeat),
                    "--batch-size",
                    str(args.batch_size),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rows[name] = json.loads(out)
    first = next(iter(rows.values()))
    print(f"{len(pairs)} pairs, model {model}, batch {args.batch_size}, {os.cpu_count()} CPUs")
    print("| layout | torch threads each | pairs/s | x 1 replica | max diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        diff = max(abs(a - b) for a, b in zip(row["scores"], first["scores"]))
        print(
            f"| {name} | {row['threads']} | {len(pairs) / row['seconds']:.2f} | "
            f"{first['seconds'] / row['seconds']:.2f}x | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
