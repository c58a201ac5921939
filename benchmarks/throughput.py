"""Side-by-side reranking throughput: crossrank (torch, ONNX fp32, ONNX int8) vs FlagReranker,
sentence-transformers CrossEncoder and a plain transformers loop, on the same model and pairs.

The workload is a RAG rerank: SciFact test queries, each with its BM25 top candidates (passages of
varied length), max_length 512, batch size 32, one scoring call per query. Every contender runs in
its own process (so peak RSS is its own), warms up on other pairs first, and its scores are
compared with FlagReranker's. Writes a JSON result (``benchmarks/common.py`` has the schema).

    python -m benchmarks.throughput                      # bge-reranker-base-sized model, 96 pairs
    python -m benchmarks.throughput --queries 1 --pairs 256 --repeat 2   # one call of 256 pairs
    python -m benchmarks.throughput --model tiny --synthetic --pairs 4 --contenders crossrank-torch

Other model families are compared with their own reference implementation, on a random-weight
checkpoint of that family built here (``--model NAME``, see ``benchmarks/workload.py``; ``NAME-tiny``
for a smoke run with ``--synthetic``):

    --model monot5  --contenders crossrank-torch,rerankers-t5     # rerankers' T5Ranker
    --model colbert --contenders crossrank-torch,pylate           # PyLate (--pylate-python)
    --model mxbai   --contenders crossrank-torch,mxbai-rerank     # MxbaiRerankV2 (--tf4-python)
    --model layerwise --contenders crossrank-torch,flag-layerwise --cutoff-layers 6
    --model lightweight --contenders crossrank-torch,flag-lightweight --tf446-python PATH \\
        --cutoff-layers 6 --compress-ratio 2 --compress-layers 5

mxbai-rerank and FlagEmbedding's LayerWiseFlagLLMReranker run in the transformers 4 venv
(``--tf4-python``; 4.57 works), FlagEmbedding's LightWeightFlagLLMReranker only on transformers
4.46 (``--tf446-python``). The layer options go to FlagEmbedding's ``compute_score`` and, with
them, ``crossrank-torch`` is crossrank's drop-in of the same class called the same way; without
them both take the classes' defaults (the last layer, no compression), as ``Reranker`` does.
``NAME@tf4`` / ``NAME@tf446`` runs a contender in that venv instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List

from benchmarks.common import ROOT, add_output_argument, display_path, write_result
from benchmarks.contenders import CONTENDERS, EXTRA
from benchmarks.workload import add_model_arguments, candidates, resolve_model

TF4_PYTHON = ROOT / ".venv-tf4" / "bin" / "python"
REFERENCE = "flagreranker"
# What a run is compared with, the first present: a family FlagReranker does not run (monoT5) is
# compared with its own reference implementation ("x_flagreranker" is then the ratio to it).
REFERENCES = {
    REFERENCE: "FlagReranker",
    "rerankers-t5": "rerankers T5Ranker",
    "pylate": "PyLate",
    "mxbai-rerank": "MxbaiRerankV2",
    "flag-layerwise": "LayerWiseFlagLLMReranker",
    "flag-lightweight": "LightWeightFlagLLMReranker",
}
# FlagEmbedding imports only with transformers 4.x, so it runs in that venv, and so do the other
# non-crossrank contenders; "NAME@tf4" runs a crossrank contender there too.
TF4 = (
    "flagreranker",
    "sentence-transformers",
    "transformers-loop",
    "mxbai-rerank",
    "flag-layerwise",
)
# FlagEmbedding 1.4.2's lightweight (CostWiseGemma) model code runs on transformers <= 4.46 only.
TF446 = ("flag-lightweight",)
TF446_PYTHON = ROOT / ".venv-tf446" / "bin" / "python"
LABELS = {
    "crossrank-torch": "crossrank, torch fp32",
    "crossrank-torch-bf16": "crossrank, torch bf16",
    "crossrank-torch-compile": "crossrank, torch fp32, compile=True",
    "crossrank-torch-mkl": "crossrank, torch fp32, MKL linear (CROSSRANK_CPU_LINEAR=mkl)",
    "crossrank-torch-onednn": "crossrank, torch fp32, oneDNN linear (CROSSRANK_CPU_LINEAR=onednn)",
    "crossrank-onnx": "crossrank, ONNX fp32",
    "crossrank-onnx-int8": "crossrank, ONNX int8",
    "crossrank-openvino": "crossrank, OpenVINO fp32",
    "crossrank-openvino-bf16": "crossrank, OpenVINO bf16",
    "crossrank-openvino-int8": "crossrank, OpenVINO int8 (static, NNCF)",
    "flagreranker": "FlagEmbedding FlagReranker fp32",
    "sentence-transformers": "sentence-transformers CrossEncoder fp32",
    "transformers-loop": "plain transformers loop fp32",
    "rerankers-t5": "rerankers T5Ranker fp32 (monoT5)",
    "pylate": "PyLate ColBERT + rank.rerank fp32 (ColBERT)",
    "mxbai-rerank": "mxbai-rerank MxbaiRerankV2.rank fp32 (mxbai-rerank-v2)",
    "flag-layerwise": "FlagEmbedding LayerWiseFlagLLMReranker fp32",
    "flag-lightweight": "FlagEmbedding LightWeightFlagLLMReranker fp32",
}
# PyLate pins its own transformers (<=5.3), so it runs in a venv of its own (--pylate-python).
PYLATE_PYTHON = ROOT / ".venv-pylate" / "bin" / "python"


def build_workload(pairs: int, queries: int, seed: int, synthetic: bool = False) -> dict:
    """``pairs`` (query, passage) pairs from ``queries`` queries, one call each, and a warm-up."""
    per_query = -(-pairs // queries)
    # One extra query for the warm-up, so no contender is timed on pairs it has just seen.
    lists = candidates(queries + 1, top_k=max(per_query, 4), seed=seed, synthetic=synthetic)
    calls, taken = [], 0
    for query, passages in lists[:queries]:
        n = min(per_query, pairs - taken)
        calls.append([[query, p] for p in passages[:n]])
        taken += n
    warm_query, warm_passages = lists[-1]
    return {"calls": calls, "warmup": [[warm_query, p] for p in warm_passages[:4]]}


def run_contender(name: str, python: str, model: str, workload: str, args) -> Dict:
    """One contender in its own process (``python -m benchmarks.contenders``): its JSON line."""
    command = [python, "-m", "benchmarks.contenders", "--contender", name]
    command += ["--model", model, "--workload", workload, "--threads", str(args.threads)]
    command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    if args.layer_options:
        command += ["--layer-options", json.dumps(args.layer_options)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"contender": name, "error": tail or f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def rows(results: List[Dict]) -> List[Dict]:
    """One flat row per contender: speed, ratio and score difference to FlagReranker, memory."""
    ok = {r["contender"]: r for r in results if "error" not in r}
    reference = next((ok[n] for n in REFERENCES if n in ok), None)
    out = []
    for r in results:
        row = {"contender": r["contender"], "label": r.get("label") or LABELS[r["contender"]]}
        if "error" in r:
            out.append({**row, "error": r["error"].splitlines()[-1][:200]})
            continue
        row.update(
            transformers=r["versions"].get("transformers"),
            pairs=r["pairs"],
            seconds=round(r["seconds"], 3),
            pairs_per_s=round(r["pairs_per_s"], 3),
            x_flagreranker=None,
            pairs_per_cpu_s=round(r["pairs"] / r["cpu_seconds"], 3),
            max_abs_score_diff_to_flagreranker=None,
            peak_rss_mib=round(r["peak_rss_mib"]),
            rss_after_load_mib=round(r["rss_after_load_mib"]),
            load_s=round(r["load_s"], 2),
            threads=r["threads"],
        )
        if reference:
            row["reference"] = reference["contender"]
            row["x_flagreranker"] = round(r["pairs_per_s"] / reference["pairs_per_s"], 3)
            row["max_abs_score_diff_to_flagreranker"] = max(
                abs(a - b) for a, b in zip(r["scores"], reference["scores"])
            )
        out.append(row)
    return out


def table(rows: List[Dict]) -> str:
    """The rows as Markdown."""
    against = REFERENCES[next((r["reference"] for r in rows if r.get("reference")), REFERENCE)]
    lines = [
        f"| contender | transformers | pairs/s | × {against} | pairs per CPU-s "
        f"| max abs score diff to {against} | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | | failed: {r['error'][:80]} | | | | |")
            continue
        ratio = "–" if r["x_flagreranker"] is None else f"{r['x_flagreranker']:.2f}×"
        diff = r["max_abs_score_diff_to_flagreranker"]
        lines.append(
            f"| {r['label']} | {r['transformers']} | {r['pairs_per_s']:.2f} | {ratio} "
            f"| {r['pairs_per_cpu_s']:.2f} | {'–' if diff is None else f'{diff:.1e}'} "
            f"| {r['peak_rss_mib']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, default="base")
    parser.add_argument("--pairs", type=int, default=96, help="timed pairs in all (default 96)")
    parser.add_argument("--queries", type=int, default=1, help="queries they come from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per contender")
    parser.add_argument("--seed", type=int, default=0, help="which queries are sampled")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument(
        "--tf4-python",
        default=str(TF4_PYTHON),
        help="Python with transformers 4, FlagEmbedding, mxbai-rerank",
    )
    parser.add_argument("--pylate-python", default=str(PYLATE_PYTHON), help="Python with pylate")
    parser.add_argument(
        "--tf446-python",
        default=str(TF446_PYTHON),
        help="Python with transformers 4.46 + FlagEmbedding (flag-lightweight)",
    )
    parser.add_argument(
        "--cutoff-layers",
        type=_layers,
        help="layer-wise/lightweight: the layer whose head scores, e.g. 6",
    )
    parser.add_argument(
        "--compress-ratio", type=int, help="lightweight: passage tokens merged into one, e.g. 2"
    )
    parser.add_argument(
        "--compress-layers", type=_layers, help="lightweight: compress before these layers, e.g. 5"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each contender's best")
    add_output_argument(parser)
    args = parser.parse_args(argv)
    if args.cutoff_layers is not None and len(args.cutoff_layers) != 1:
        parser.error("--cutoff-layers: one layer (the benchmark compares one score per pair)")
    args.layer_options = {
        name: getattr(args, name)
        for name in ("cutoff_layers", "compress_ratio", "compress_layers")
        if getattr(args, name) is not None
    }

    model = resolve_model(args.model)
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    for name in names:
        contender, _, venv = name.partition("@")
        if contender not in CONTENDERS + EXTRA or venv not in ("", "tf4", "tf446"):
            parser.error(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS + EXTRA)}")
    with tempfile.TemporaryDirectory() as tmp:
        workload_path = os.path.join(tmp, "workload.json")
        workload = build_workload(args.pairs, args.queries, args.seed, args.synthetic)
        with open(workload_path, "w", encoding="utf-8") as handle:
            json.dump(workload, handle)
        if any(n.startswith("crossrank-onnx") for n in names):
            prepare_onnx(model, names)
        best: Dict[str, Dict] = {}
        for round_ in range(args.repeat):  # round-robin, so a burst of other load hits all alike
            for name in names:
                contender, _, venv = name.partition("@")
                python = args.tf4_python if venv == "tf4" or contender in TF4 else sys.executable
                python = args.tf446_python if venv == "tf446" or contender in TF446 else python
                python = args.pylate_python if contender == "pylate" else python
                print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                result = run_contender(contender, python, model, workload_path, args)
                if name not in best or result.get("pairs_per_s", 0) > best[name].get(
                    "pairs_per_s", 0
                ):
                    best[name] = result
        results = rows([best[name] for name in names])
    print(table(results))
    settings = {
        "model": display_path(model),
        "pairs": sum(len(call) for call in workload["calls"]),
        "queries": len(workload["calls"]),
        "workload": "synthetic" if args.synthetic else "SciFact test queries x BM25 candidates",
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "threads_per_contender": args.threads,
        "rounds": args.repeat,
        "seed": args.seed,
        "contenders": names,
        "layer_options": args.layer_options or None,
    }
    write_result(
        "throughput",
        "Reranking throughput per contender, one scoring call per query",
        settings,
        {"rows": results},
        args.output,
        notes=[
            "pairs/s: best round; pairs_per_cpu_s counts the CPU time of all threads (less skewed "
            "by other load); FlagEmbedding, sentence-transformers, the plain loop and mxbai-rerank "
            "run in the transformers 4 venv, FlagEmbedding's lightweight reranker in the "
            "transformers 4.46 one"
        ],
        argv=argv,
    )


def _layers(text: str) -> List[int]:
    """``"4,8"`` → ``[4, 8]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def prepare_onnx(model: str, names: List[str]) -> None:
    """Export and quantize once, outside the timed processes (so their peak RSS is a reload's)."""
    quantize = [None if n == "crossrank-onnx" else "int8" for n in names if "onnx" in n]
    code = (
        "from crossrank import Reranker\n"
        f"for q in {quantize!r}:\n"
        f"    Reranker({model!r}, device='cpu', backend='onnx', quantize=q)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


if __name__ == "__main__":
    main()
