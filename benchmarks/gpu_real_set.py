"""A trained checkpoint and real SciFact candidates for ``gpu_check.py --bundle``, and their nDCG.

The GPU machine has no data, no ``crossrank[eval]`` extras and takes at most 64 MiB of files, so
the real-data part of the GPU check is split in three:

1. here, ``make``: BM25 top-``--top-n`` candidates of every SciFact test claim (with their texts)
   and a float16 copy of a trained checkpoint (half the bytes; each dtype on the GPU then starts
   from the same weights) go into one folder::

       python -m benchmarks.gpu_real_set make ../shared/data/scifact --model runs/demo-reranker \\
           --bundle .gpu/bundle --top-n 20

2. there, ``python -m benchmarks.gpu_check --bundle .gpu/bundle --report runs/gpu_check.json``
   scores every pair in float32, float16 and bfloat16 and times the contenders on these pairs; the
   scores come back in its report;

3. here, ``evaluate``: nDCG@10 (ir-measures) of BM25 and of each dtype's ranking, printed and
   written as a JSON result (``benchmarks/common.py``)::

       python -m benchmarks.gpu_real_set evaluate runs/gpu_check.json --bundle .gpu/bundle
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import add_output_argument, write_result


def make(data_dir: str, model: str, bundle: Path, top_n: int, split: str) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from crossrank.evaluation import BM25, load_beir

    data = load_beir(data_dir, split)
    run = BM25(data).search(data.queries, top_n)
    candidates = {
        q: [[d, data.doc_text(d), score] for d, score in docs.items()] for q, docs in run.items()
    }
    from crossrank.loading import trained_max_length

    trained = trained_max_length(model)  # score a crossrank-trained checkpoint at its own length
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "pairs.json").write_text(
        json.dumps(
            {
                "name": f"{data.name} {split}, BM25 top-{top_n}",
                "queries": data.queries,
                "candidates": candidates,
                "qrels": data.qrels,
                "model": str(model),
                "max_length": trained,
            }
        )
    )
    weights = AutoModelForSequenceClassification.from_pretrained(model, dtype=torch.float32)
    weights.to(torch.float16).save_pretrained(bundle / "model")
    AutoTokenizer.from_pretrained(model).save_pretrained(bundle / "model")
    pairs = sum(len(c) for c in candidates.values())
    print(f"{len(candidates)} queries, {pairs} pairs, model {model} (float16 copy) in {bundle}")


def evaluate(report_path: Path, bundle: Path) -> tuple:
    """nDCG@10 of BM25 and of each dtype's ranking: (Markdown, rows, the report's real part)."""
    from crossrank.evaluation import compute_metrics

    real = json.loads(report_path.read_text()).get("real")
    if not real or "error" in real:
        raise SystemExit(f"{report_path}: no real-checkpoint scores ({(real or {}).get('error')})")
    pairs = json.loads((bundle / "pairs.json").read_text())
    bm25 = {q: {d: s for d, _, s in docs} for q, docs in pairs["candidates"].items()}
    rows = [("BM25", compute_metrics(pairs["qrels"], bm25, ("nDCG@10",))["nDCG@10"])]
    for dtype, run in real["runs"].items():
        rows.append(
            (
                f"{real['model']} {dtype}",
                compute_metrics(pairs["qrels"], run, ("nDCG@10",))["nDCG@10"],
            )
        )
    lines = [f"{pairs['name']}, {len(pairs['qrels'])} judged queries, scored on {real['device']}",
             "", "| ranking | nDCG@10 |", "| --- | ---: |"]  # fmt: skip
    lines += [f"| {name} | {value:.4f} |" for name, value in rows]
    table = [{"ranking": name, "nDCG@10": value} for name, value in rows]
    return "\n".join(lines), table, {**real, "name": pairs["name"], "queries": len(pairs["qrels"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="candidates + float16 checkpoint into --bundle")
    m.add_argument("data_dir")
    m.add_argument("--model", required=True, help="a trained checkpoint directory")
    m.add_argument("--bundle", type=Path, required=True)
    m.add_argument("--top-n", type=int, default=20)
    m.add_argument("--split", default="test")
    e = sub.add_parser("evaluate", help="nDCG@10 of each dtype from a gpu_check report")
    e.add_argument("report", type=Path)
    e.add_argument("--bundle", type=Path, required=True)
    add_output_argument(e)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.data_dir, args.model, args.bundle, args.top_n, args.split)
        return
    markdown, table, real = evaluate(args.report, args.bundle)
    print(markdown)
    settings = {
        "candidates": real["name"],
        "judged_queries": real["queries"],
        "model": real["model"],
        "scored_on": real["device"],
        "max_length": real.get("max_length"),
    }
    title = "nDCG@10 of a trained checkpoint's rankings per dtype, scored on a GPU"
    write_result("gpu_real_set", title, settings, {"rows": table}, args.output, argv=argv)


if __name__ == "__main__":
    main()
