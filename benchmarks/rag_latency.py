"""RAG-call latency: p50/p95 of ``Reranker.rank(query, 50 passages of ~200 tokens)`` per backend.

Each contender (a backend and precision) runs in its own process: it loads the model (ONNX and
OpenVINO exports are made beforehand, in a process of their own, so no timed process exports),
warms up on another query, then times ``--repeats`` calls (or fewer, once ``--max-seconds`` is
spent), each call one query with its own 50 passages. Models: a MiniLM-L6-sized (6 × 384) and a
bge-base-sized (12 × 768) BERT cross-encoder with random weights (speed does not depend on their
values) and the real all-MiniLM-L6-v2 vocabulary. Passages: SciFact documents of at least 200
tokens, cut after their 200th token (pairs of ~225 tokens with the query).

    python -m benchmarks.rag_latency                                   # all models and contenders
    python -m benchmarks.rag_latency --models minilm --contenders torch onnx-int8 --repeats 2
    python -m benchmarks.rag_latency --models tiny --contenders torch --repeats 1 --calls 1 \
        --passages 2                                                   # smoke run

Ratios between contenders are meaningful only from one run on one quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from benchmarks.common import (
    ROOT,
    add_output_argument,
    display_path,
    percentile,
    write_result,
)
from benchmarks.workload import (
    RUNS,
    base_sized_model,
    load_scifact,
    minilm_dir,
    random_bert,
    tiny_model,
)

# contender → Reranker options (all on CPU); "prepare" ones export a file before timing.
CONTENDERS: Dict[str, dict] = {
    "torch": {},
    "torch-bf16": {"dtype": "bfloat16"},
    "torch-compile": {"compile": True},
    "torch-mkl": {},  # torch fp32 with torch's default (MKL) linear layers: CROSSRANK_CPU_LINEAR=mkl
    "onnx": {"backend": "onnx"},
    "onnx-int8": {"backend": "onnx", "quantize": "int8"},
    "openvino": {"backend": "openvino"},
    "openvino-bf16": {"backend": "openvino", "dtype": "bfloat16"},
    "openvino-int8": {"backend": "openvino", "quantize": "int8"},
}
LABELS = {
    "torch": "torch fp32",
    "torch-bf16": "torch bf16",
    "torch-compile": "torch fp32, compile=True",
    "torch-mkl": "torch fp32, MKL linear (CROSSRANK_CPU_LINEAR=mkl)",
    "onnx": "ONNX fp32",
    "onnx-int8": "ONNX int8",
    "openvino": "OpenVINO fp32",
    "openvino-bf16": "OpenVINO bf16 (f32 on CPUs without it)",
    "openvino-int8": "OpenVINO int8 (static, NNCF)",
}
REFERENCE = "torch"
PASSAGE_TOKENS = 200


def minilm_sized_model(path: Path = RUNS / "bench-rag-minilm") -> Path:
    """A MiniLM-L6-sized BERT cross-encoder (6 × 384, 12 heads, 1 logit), random weights, seed 0."""
    return random_bert(path, hidden=384, layers=6)


MODELS = {"minilm": minilm_sized_model, "base": base_sized_model, "tiny": tiny_model}


def build_calls(calls: int, passages: int, seed: int) -> List[dict]:
    """``calls`` SciFact test queries, each with ``passages`` distinct ~200-token passages."""
    from transformers import AutoTokenizer

    queries, corpus = load_scifact("test")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), model_max_length=1 << 30)
    texts = list(corpus.values())
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    cut = [
        text[: offsets[PASSAGE_TOKENS - 1][1]]
        for text, offsets in zip(texts, encoded["offset_mapping"])
        if len(offsets) >= PASSAGE_TOKENS
    ]
    rng = random.Random(seed)
    needed = calls * passages
    if len(cut) < needed:
        raise SystemExit(f"only {len(cut)} SciFact passages of {PASSAGE_TOKENS}+ tokens")
    chosen = rng.sample(cut, needed)
    picked = rng.sample(sorted(queries.values()), calls)
    return [
        {"query": q, "passages": chosen[i * passages : (i + 1) * passages]}
        for i, q in enumerate(picked)
    ]


# ---------------------------------------------------------------------------- one contender


def worker(args) -> None:
    """Load one contender, warm up, time the calls; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from crossrank import Reranker

    with open(args.workload, encoding="utf-8") as handle:
        calls = json.load(handle)
    options = CONTENDERS[args.contender]
    started = time.perf_counter()
    reranker = Reranker(
        args.model, device="cpu", max_length=512, batch_size=args.batch_size, **options
    )
    load_s = time.perf_counter() - started
    warm, timed = calls[0], calls[1:]
    started = time.perf_counter()
    reranker.rank(warm["query"], warm["passages"])
    first_ms = (time.perf_counter() - started) * 1000
    for _ in range(args.warmup - 1):
        reranker.rank(warm["query"], warm["passages"])
    latencies: List[float] = []
    logits: List[float] = []
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for repeat in range(args.repeats):
        call = timed[repeat % len(timed)]
        started = time.perf_counter()
        hits = reranker.rank(call["query"], call["passages"])
        latencies.append((time.perf_counter() - started) * 1000)
        if repeat == 0:
            logits = [h.logit for h in sorted(hits, key=lambda h: h.index)]
        if time.perf_counter() - wall_started > args.max_seconds:
            break
    cpu_s = time.process_time() - cpu_started
    wall_s = time.perf_counter() - wall_started
    pairs = sum(len(timed[i % len(timed)]["passages"]) for i in range(len(latencies)))
    print(
        json.dumps(
            {
                "contender": args.contender,
                "latencies_ms": latencies,
                "first_call_ms": first_ms,
                "load_s": load_s,
                "pairs_per_s": pairs / wall_s,
                "pairs_per_cpu_s": pairs / cpu_s if cpu_s else None,
                "logits_first_call": logits,
                "info": {k: v for k, v in reranker.info().items() if k != "devices"},
                "threads": torch.get_num_threads(),
            }
        )
    )


# ---------------------------------------------------------------------------- the driver


def run_contender(name: str, model: str, workload: str, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.rag_latency", "--worker", "--contender", name]
    command += ["--model", model, "--workload", workload, "--threads", str(args.threads)]
    command += ["--repeats", str(args.repeats), "--max-seconds", str(args.max_seconds)]
    command += ["--batch-size", str(args.batch_size), "--warmup", str(args.warmup)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"contender": name, "error": tail or f"exit code {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["p50_ms"] = percentile(result["latencies_ms"], 50)
    result["p95_ms"] = percentile(result["latencies_ms"], 95)
    return result


def prepare(model: str, names: List[str]) -> None:
    """Make the ONNX/OpenVINO files once, outside the timed processes."""
    exported = [n for n in names if CONTENDERS[n].get("backend", "torch") != "torch"]
    if not exported:
        return
    code = (
        "from benchmarks import rag_latency\n"
        "from crossrank import Reranker\n"
        f"for name in {exported!r}:\n"
        "    rag_latency.apply_switches(name)\n"
        f"    Reranker({model!r}, device='cpu', **rag_latency.CONTENDERS[name])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:  # the contender's own process reports the error in the table
        print(done.stderr.strip().splitlines()[-1:], file=sys.stderr)


def apply_switches(name: str) -> None:
    """Process-wide switches some contenders need, set before the model loads."""
    if name == "torch-mkl":
        os.environ["CROSSRANK_CPU_LINEAR"] = "mkl"


def rows(model: str, results: List[dict]) -> List[dict]:
    """One flat row per contender of ``model``: percentiles, speed, agreement with torch fp32."""
    reference = next((r for r in results if r["contender"] == REFERENCE and "error" not in r), None)
    out = []
    for r in results:
        row = {"model": model, "contender": r["contender"], "label": LABELS[r["contender"]]}
        if "error" in r:
            out.append({**row, "error": r["error"].splitlines()[-1][:200]})
            continue
        row.update(
            p50_ms=round(r["p50_ms"], 1),
            p95_ms=round(r["p95_ms"], 1),
            calls=len(r["latencies_ms"]),
            pairs_per_s=round(r["pairs_per_s"], 2),
            x_torch_fp32_p50=None,
            first_call_ms=round(r["first_call_ms"], 1),
            load_s=round(r["load_s"], 2),
            max_abs_logit_diff_to_torch_fp32=None,
            top10_shared_with_torch_fp32=None,
        )
        if reference:
            a, b = r["logits_first_call"], reference["logits_first_call"]
            k = min(10, len(a))
            row.update(
                x_torch_fp32_p50=round(reference["p50_ms"] / r["p50_ms"], 3),
                max_abs_logit_diff_to_torch_fp32=max(abs(x - y) for x, y in zip(a, b)),
                top10_shared_with_torch_fp32=f"{len(set(top(a, k)) & set(top(b, k)))}/{k}",
            )
        out.append(row)
    return out


def table(rows: List[dict]) -> str:
    """The rows of one model as Markdown."""
    lines = [
        "| contender | p50 ms | p95 ms | calls | pairs/s | × torch fp32 (p50) | first call ms "
        "| load s | max abs logit diff to torch fp32 | top-10 shared with torch fp32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error'][:80]} |" + " |" * 8)
            continue
        ratio, diff = r["x_torch_fp32_p50"], r["max_abs_logit_diff_to_torch_fp32"]
        lines.append(
            f"| {r['label']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['calls']} "
            f"| {r['pairs_per_s']:.1f} | {'–' if ratio is None else f'{ratio:.2f}×'} "
            f"| {r['first_call_ms']:.0f} | {r['load_s']:.1f} "
            f"| {'–' if diff is None else f'{diff:.1e}'} | {r['top10_shared_with_torch_fp32']} |"
        )
    return "\n".join(lines)


def top(logits: List[float], k: int) -> List[int]:
    return sorted(range(len(logits)), key=lambda i: -logits[i])[:k]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["minilm", "base"], choices=list(MODELS), metavar="MODEL"
    )
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), metavar="NAME")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per contender")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop timing after this")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--passages", type=int, default=50, help="passages per call")
    parser.add_argument("--calls", type=int, default=8, help="distinct queries cycled through")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per contender")
    parser.add_argument("--seed", type=int, default=0)
    add_output_argument(parser)
    # internal: one contender in this process
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        apply_switches(args.contender)
        return worker(args)
    unknown = [n for n in args.contenders if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    if args.repeats < 1 or args.passages < 1 or args.calls < 1:
        parser.error("--repeats, --passages and --calls must be >= 1")
    all_rows: List[dict] = []
    latencies: List[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workload = os.path.join(tmp, "calls.json")
        with open(workload, "w", encoding="utf-8") as handle:
            json.dump(build_calls(args.calls + 1, args.passages, args.seed), handle)
        for key in args.models:
            model = str(MODELS[key]())
            print(f"{key}: preparing exports ...", file=sys.stderr, flush=True)
            prepare(model, args.contenders)
            results = []
            for name in args.contenders:
                print(f"{key}: {name} ...", file=sys.stderr, flush=True)
                results.append(run_contender(name, model, workload, args))
            model_rows = rows(key, results)
            all_rows += model_rows
            latencies += [
                {"model": key, "contender": r["contender"], "call": i + 1, "ms": round(ms, 1)}
                for r in results
                for i, ms in enumerate(r.get("latencies_ms", []))
            ]
            print(f"\n### {key} ({display_path(model)})\n\n{table(model_rows)}\n", flush=True)
    settings = {
        "models": {key: display_path(MODELS[key]()) for key in args.models},
        "contenders": args.contenders,
        "passages_per_call": args.passages,
        "passage_tokens": PASSAGE_TOKENS,
        "distinct_queries": args.calls,
        "timed_calls": args.repeats,
        "max_seconds": args.max_seconds,
        "warmup_calls": args.warmup,
        "batch_size": args.batch_size,
        "max_length": 512,
        "threads_per_contender": args.threads,
        "seed": args.seed,
    }
    figures: Dict[str, object] = {"rows": all_rows}
    if latencies:
        figures["latencies"] = latencies
    title = "RAG-call latency: rank(query, passages of ~200 tokens) per backend"
    write_result("rag_latency", title, settings, figures, args.output, argv=argv)


if __name__ == "__main__":
    main()
