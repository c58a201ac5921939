"""CPU routes for issue 21, one per process: pairs/s of one ``compute_score`` call, same pairs.

Each route is a way to run the same cross-encoder on the CPU; this script times one call on the
BM25 top-N of one SciFact test query (max_length 512, batch 32) after a warm-up on another query,
and prints one JSON line per route (pairs/s of the best round, load seconds, the scores). Routes
that are not a crossrank option are built here from crossrank's parts, to measure them before
deciding (see benchmarks/RESULTS.md, "CPU routes on AVX512-VNNI/BF16"):

    python -m benchmarks.experiments.cpu_routes --model runs/bench-model --routes torch ov-int8
    python -m benchmarks.experiments.cpu_routes --routes all --pairs 64 --rounds 2

Run it on a quiet machine; ratios only between routes of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.common import ROOT
from benchmarks.workload import base_sized_model, bm25_candidates

ROUTES = {
    "torch": {},
    "torch-compile": {"compile": True},
    "torch-compile-nofreeze": {},  # torch.compile without inductor's freezing (built here)
    "torch-bf16": {"dtype": "bfloat16"},
    "onnx": {"backend": "onnx"},
    "onnx-int8": {"backend": "onnx", "quantize": "int8"},
    "ov": {"backend": "openvino"},
    "ov-bf16": {"backend": "openvino", "dtype": "bfloat16"},
    "ov-int8": {"backend": "openvino", "quantize": "int8"},
    "ov-int8-bf16": {"backend": "openvino", "quantize": "int8", "dtype": "bfloat16"},
    # static int8 calibrated on 128 SciFact pairs instead of the built-in ones (built here)
    "ov-int8-scifact": {"backend": "openvino"},
    # data-free: int8 weights (NNCF compress_weights) + OpenVINO's dynamic activation quantization
    "ov-int8-weights": {"backend": "openvino"},
}


def run_route(route: str, model: str, pairs_n: int, rounds: int) -> dict:
    import torch

    from crossrank import Reranker

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    lists = bm25_candidates(4, top_k=max(pairs_n, 64), seed=0)
    pairs = [[lists[0][0], p] for p in lists[0][1][:pairs_n]]
    warm = [[lists[1][0], p] for p in lists[1][1][:8]]
    started = time.perf_counter()
    reranker = Reranker(
        model,
        device="cpu",
        max_length=512,
        batch_size=32,
        show_progress_bar=False,
        **ROUTES[route],
    )
    backend = reranker._backend
    if route == "torch-compile-nofreeze":
        backend._compiled = torch.compile(backend.model, dynamic=True)
    elif route in ("ov-int8-scifact", "ov-int8-weights"):
        backend.session = _openvino_variant(route, reranker, lists)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    reranker.compute_score(warm)
    warm_s = time.perf_counter() - started
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        scores = reranker.compute_score(pairs)
        times.append(time.perf_counter() - started)
    return {
        "route": route,
        "pairs_s": round(pairs_n / min(times), 3),
        "rounds_s": [round(t, 2) for t in times],
        "load_s": round(load_s, 1),
        "first_call_s": round(warm_s, 1),
        "scores": scores,
    }


def _openvino_variant(route, reranker, lists):
    import nncf
    import openvino as ov

    from crossrank.backends.openvino import OpenVinoModel, quantize_int8

    onnx_path = reranker._backend.path
    if route == "ov-int8-scifact":
        target = onnx_path.with_name("model.routes-int8-scifact.xml")
        if not target.exists():
            pairs = [(q, p) for q, passages in lists[2:4] for p in passages[:64]]
            family = reranker._family
            quantize_int8(onnx_path, target, family.encoder(512, None), family.pad_token_id, pairs)
        return OpenVinoModel(target)
    target = onnx_path.with_name("model.routes-int8-weights.xml")
    if not target.exists():
        core = ov.Core()
        compressed = nncf.compress_weights(
            core.read_model(str(onnx_path)), mode=nncf.CompressWeightsMode.INT8_ASYM
        )
        ov.save_model(compressed, str(target))
    model = OpenVinoModel(target)
    config = {
        "INFERENCE_NUM_THREADS": 2,
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": 32,
    }
    core = ov.Core()
    model.compiled = core.compile_model(core.read_model(str(target)), "CPU", config)
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="cross-encoder dir (default: bge-base-sized, random)")
    parser.add_argument("--routes", nargs="+", default=["all"], help=f"all or of {list(ROUTES)}")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--route", help=argparse.SUPPRESS)  # the worker process
    args = parser.parse_args(argv)
    model = args.model or str(base_sized_model())
    if args.route:
        print(json.dumps(run_route(args.route, model, args.pairs, args.rounds)))
        return
    routes = list(ROUTES) if args.routes == ["all"] else args.routes
    reference = None
    for route in routes:
        command = [sys.executable, "-m", "benchmarks.experiments.cpu_routes", "--route", route]
        command += ["--model", model, "--pairs", str(args.pairs), "--rounds", str(args.rounds)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            print(f"{route}: failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        reference = reference or result
        diff = max(abs(a - b) for a, b in zip(result["scores"], reference["scores"]))
        print(
            f"{route:24s} {result['pairs_s']:7.2f} pairs/s  x{result['pairs_s'] / reference['pairs_s']:.2f}"
            f"  max |diff| to {reference['route']} {diff:.1e}  first call {result['first_call_s']} s"
            f"  load {result['load_s']} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
