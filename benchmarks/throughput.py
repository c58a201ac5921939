"""Side-by-side reranking throughput: crossrank (torch, ONNX fp32, ONNX int8) vs FlagReranker,
sentence-transformers CrossEncoder and a plain transformers loop, on the same model and pairs.

The workload is a RAG rerank: SciFact test queries, each with its BM25 top candidates (passages of
varied length), max_length 512, batch size 32, one scoring call per query. Every contender runs in
its own process (so peak RSS is its own), warms up on other pairs first, and its scores are
compared with FlagReranker's.

    python benchmarks/throughput.py                      # bge-reranker-base-sized model, 96 pairs
    python benchmarks/throughput.py --model runs/minilm-ce --write   # a trained model; update RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contenders import CONTENDERS, EXTRA  # noqa: E402
from workload import ROOT, base_sized_model, bm25_candidates  # noqa: E402

TF4_PYTHON = ROOT / ".venv-tf4" / "bin" / "python"
RESULTS = Path(__file__).with_name("RESULTS.md")
REFERENCE = "flagreranker"
# FlagEmbedding imports only with transformers 4.x, so it runs in that venv, and so do the other
# non-crossrank contenders; "NAME@tf4" runs a crossrank contender there too.
TF4 = ("flagreranker", "sentence-transformers", "transformers-loop")
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
}


def build_workload(pairs: int, queries: int, seed: int) -> dict:
    per_query = -(-pairs // queries)
    # One extra query for the warm-up, so no contender is timed on pairs it has just seen.
    lists = bm25_candidates(queries + 1, top_k=max(per_query, 4), seed=seed)
    calls, taken = [], 0
    for query, passages in lists[:queries]:
        n = min(per_query, pairs - taken)
        calls.append([[query, p] for p in passages[:n]])
        taken += n
    warm_query, warm_passages = lists[-1]
    return {"calls": calls, "warmup": [[warm_query, p] for p in warm_passages[:4]]}


def run_contender(name: str, python: str, model: str, workload: str, args) -> Dict:
    command = [python, str(Path(__file__).with_name("contenders.py")), "--contender", name]
    command += ["--model", model, "--workload", workload, "--threads", str(args.threads)]
    command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"contender": name, "error": tail or f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: List[Dict]) -> str:
    reference = next((r for r in results if r["contender"] == REFERENCE and "error" not in r), None)
    lines = [
        "| contender | transformers | pairs/s | × FlagReranker | pairs per CPU-s "
        "| max abs score diff to FlagReranker | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        label = LABELS[r["contender"]]
        if "error" in r:
            lines.append(f"| {label} | | failed: {r['error'].splitlines()[-1][:80]} | | | | |")
            continue
        ratio = diff = "–"
        if reference:
            ratio = f"{r['pairs_per_s'] / reference['pairs_per_s']:.2f}×"
            diff = f"{max(abs(a - b) for a, b in zip(r['scores'], reference['scores'])):.1e}"
        per_cpu_s = r["pairs"] / r["cpu_seconds"]
        lines.append(
            f"| {label} | {r['versions'].get('transformers', '?')} | {r['pairs_per_s']:.2f} "
            f"| {ratio} | {per_cpu_s:.2f} | {diff} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Linux {platform.release()}"


def write_results(section: str, path: Path = RESULTS) -> None:
    """Replace the table part of RESULTS.md's "## Speed" section with ``section``.

    The part ends at the next "## " or "### " heading, so hand-written subsections below the
    table (memory, int8 quality, notes) survive a re-run.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "## Speed"), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith(("## ", "### "))),
            len(lines),
        )
        text = (
            "".join(lines[:start])
            + section
            + ("\n" if end < len(lines) else "")
            + "".join(lines[end:])
        )
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="cross-encoder checkpoint dir (default: base-sized BERT)")
    parser.add_argument("--pairs", type=int, default=96, help="timed pairs in all (default 96)")
    parser.add_argument("--queries", type=int, default=1, help="queries they come from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per contender")
    parser.add_argument("--seed", type=int, default=0, help="which queries are sampled")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--tf4-python", default=str(TF4_PYTHON), help="Python with FlagEmbedding")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each contender's best")
    parser.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    args = parser.parse_args(argv)

    model = os.path.abspath(args.model) if args.model else str(base_sized_model())
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    for name in names:
        if name.partition("@")[0] not in CONTENDERS + EXTRA or name.partition("@")[2] not in (
            "",
            "tf4",
        ):
            parser.error(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS + EXTRA)}")
    with tempfile.TemporaryDirectory() as tmp:
        workload_path = os.path.join(tmp, "workload.json")
        workload = build_workload(args.pairs, args.queries, args.seed)
        with open(workload_path, "w", encoding="utf-8") as handle:
            json.dump(workload, handle)
        if any(n.startswith("crossrank-onnx") for n in names):
            _prepare_onnx(model, names)
        best: Dict[str, Dict] = {}
        for round_ in range(args.repeat):  # round-robin, so a burst of other load hits all alike
            for name in names:
                contender, _, venv = name.partition("@")
                python = args.tf4_python if venv == "tf4" or contender in TF4 else sys.executable
                print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
                result = run_contender(contender, python, model, workload_path, args)
                if name not in best or result.get("pairs_per_s", 0) > best[name].get(
                    "pairs_per_s", 0
                ):
                    best[name] = result
        results = [best[name] for name in names]
    markdown = table(results)
    print(markdown)
    if args.write:
        write_results(_section(markdown, results, workload, model, args, argv))


def _prepare_onnx(model: str, names: List[str]) -> None:
    """Export and quantize once, outside the timed processes (so their peak RSS is a reload's)."""
    quantize = [None if n == "crossrank-onnx" else "int8" for n in names if "onnx" in n]
    code = (
        "from crossrank import Reranker\n"
        f"for q in {quantize!r}:\n"
        f"    Reranker({model!r}, device='cpu', backend='onnx', quantize=q)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _section(markdown, results, workload, model, args, argv) -> str:
    ok = [r for r in results if "error" not in r]
    versions = {}
    for r in ok:
        versions.update({k: v for k, v in r["versions"].items() if k not in versions})
    transformers = sorted({r["versions"].get("transformers", "?") for r in ok})
    command = "python benchmarks/throughput.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    n_pairs = sum(len(c) for c in workload["calls"])
    return (
        "## Speed\n\n"
        f"{datetime.date.today().isoformat()} · {machine()} · {args.threads} threads per contender\n\n"
        f"`{command.strip()}` — model `{os.path.relpath(model, ROOT)}`, {n_pairs} SciFact "
        f"(query, BM25 candidate) pairs from {len(workload['calls'])} quer"
        f"{'y' if len(workload['calls']) == 1 else 'ies'}, max_length {args.max_length}, "
        f"batch size {args.batch_size}, one call per query, warm-up excluded"
        f"{f', best of {args.repeat} rounds' if args.repeat > 1 else ''}. "
        "Pairs per CPU-second counts the CPU time of all threads, so it is less skewed by other "
        "load on the machine than pairs/s.\n\n"
        f"{markdown}\n\n"
        f"Versions: {', '.join(f'{k} {v}' for k, v in sorted(versions.items()))} "
        f"(transformers {' and '.join(transformers)}: FlagEmbedding, sentence-transformers and "
        "the plain loop run in the transformers 4 venv, crossrank in its own).\n"
    )


if __name__ == "__main__":
    main()
