"""``torch.compile`` on crossrank's CUDA float16 path: eager vs compiled (dynamic shapes), same pairs.

Needs a bundle from ``python -m benchmarks.gpu_real_set make`` (a trained checkpoint + SciFact candidates) and builds a
random bge-base-sized model on the spot (``gpu_check.build_model``). Each contender: a warm-up on
1,200 other pairs (compilation happens there), then the best of 3 timed runs on 4,000 pairs::

    PYTHONPATH=src python3 -m benchmarks.experiments.gpu_compile --bundle .gpu/bundle
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.gpu_check import build_model


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    from crossrank import Reranker

    data = json.loads((args.bundle / "pairs.json").read_text())
    ids = list(data["candidates"])
    pairs_of = lambda qs: [[data["queries"][q], t] for q in qs for _, t, _ in data["candidates"][q]]  # noqa: E731
    pairs, warm = pairs_of(ids[:200]), pairs_of(ids[200:260])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = build_model(Path(tmp) / "base", 12, 768, 12, 3072)
        models = [
            ("trained checkpoint", str(args.bundle / "model"), data.get("max_length") or 512),
            ("random bge-base-sized", base, 512),
        ]
        for name, model, max_length in models:
            reference = None
            for mode in ("eager", "compile"):
                rr = Reranker(
                    model, device=args.device, dtype="float16", max_length=max_length, batch_size=64
                )
                if mode == "compile":
                    rr._backend.model = torch.compile(rr._backend.model, dynamic=True)
                started = time.perf_counter()
                rr.compute_score(warm)
                torch.cuda.synchronize()
                warmup = time.perf_counter() - started
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    scores = rr.compute_score(pairs)
                    torch.cuda.synchronize()
                    best = min(best, time.perf_counter() - started)
                reference = scores if reference is None else reference
                row = {
                    "max_length": max_length,
                    "warmup_s": round(warmup, 1),
                    "pairs_per_s": round(len(pairs) / best, 1),
                    "max_abs_diff_to_eager": max(abs(a - b) for a, b in zip(scores, reference)),
                }
                out[f"{name} / {mode}"] = row
                print(name, mode, row, flush=True)
                del rr
                torch.cuda.empty_cache()
    return out


if __name__ == "__main__":
    main()
