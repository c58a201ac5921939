"""The BM25 fusion weight of ``crossrank adapt``, chosen on one collection's labels, then applied.

A label-free route has no labels to tune its fusion with, so the weight is a constant of the
recipe (``crossrank.training.adaptation.FUSE_WEIGHT``). This benchmark chooses it where labels may
be read — a model adapted without labels to *another* collection (SciFact), scored on that
collection's queries — and then reports each model of the target collection at every weight, the
chosen one marked. The reranker's scores of each (model, collection, split) are computed once and
cached beside the runs, so every weight and both fusion methods reuse them.

    python -m benchmarks.fusion_weight --data ../shared/data/scifact \\
        --models runs/adapt-scifact/seed42/model                       # tune: prints the best weight
    python -m benchmarks.fusion_weight --data ../shared/data/cranfield --chosen W \\
        --models runs/adapt/cranfield-seed{42,7,1}/model               # apply, every weight reported

Needs ``crossrank[eval]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from benchmarks.common import ROOT, add_output_argument, display_path, write_result

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # 0: the reranker alone, 1: BM25 alone


def reranked_run(model: str, data, bm25_run, max_length: int, cache_dir: Path) -> dict:
    """The reranker's scores of ``bm25_run``, from the cache when this model scored it before."""
    from crossrank import Reranker
    from crossrank.evaluation import rerank

    weights_file = Path(model) / "model.safetensors"
    stamp = weights_file.stat().st_mtime_ns if weights_file.exists() else 0
    key = json.dumps([os.path.abspath(model), stamp, data.name, len(bm25_run), max_length])
    path = cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached["key"] == key and set(cached["run"]) == set(bm25_run):
            return cached["run"]
    run = rerank(Reranker(model, max_length=max_length), data, bm25_run, show_progress=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "run": run}), encoding="utf-8")
    return run


def weight_curve(data, bm25_run, run) -> dict:
    """nDCG@10 at every min-max weight, and with reciprocal-rank fusion."""
    from crossrank.evaluation import compute_metrics, fuse

    curve = {}
    for weight in WEIGHTS:
        fused = (
            fuse(bm25_run, run, weight) if 0 < weight < 1 else (run if weight == 0 else bm25_run)
        )
        curve[f"minmax@{weight:g}"] = round(compute_metrics(data.qrels, fused)["nDCG@10"], 4)
    curve["rrf"] = round(compute_metrics(data.qrels, fuse(bm25_run, run, 0.5, "rrf"))["nDCG@10"], 4)
    return curve


def main(argv=None) -> int:
    from crossrank.evaluation import BM25, load_beir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a BEIR-format collection")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", nargs="+", required=True, help="adapted models (RUN/model)")
    parser.add_argument("--max-length", type=int, default=128, help="as the models were trained")
    parser.add_argument("--chosen", type=float, default=None, help="the weight chosen elsewhere")
    parser.add_argument("--max-queries", type=int, default=None, help="the first N (smoke runs)")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "fusion-cache"))
    parser.add_argument("--title", default=None)
    add_output_argument(parser)
    args = parser.parse_args(argv)
    data = load_beir(args.data, args.split).subset(args.max_queries)
    bm25_run = BM25(data).search(data.queries, 100)
    rows = []
    for model in args.models:
        run = reranked_run(model, data, bm25_run, args.max_length, Path(args.cache))
        rows.append({"model": display_path(model), **weight_curve(data, bm25_run, run)})
        print(json.dumps(rows[-1]), flush=True)
    # over the models, the weight whose worst model is best: a weight for every seed, not the mean
    by_weight = [
        {
            "weight": w,
            "worst": min(row[f"minmax@{w:g}"] for row in rows),
            "mean": round(sum(row[f"minmax@{w:g}"] for row in rows) / len(rows), 4),
        }
        for w in WEIGHTS
    ]
    fused = [line for line in by_weight if 0 < line["weight"] < 1]  # 0 and 1 are no fusion
    best = max(fused, key=lambda line: (line["worst"], -abs(line["weight"] - 0.5)))["weight"]
    print(f"best weight on {data.name} {args.split} (worst model's nDCG@10): {best:g}", flush=True)
    figures = {"rows": rows, "by_weight": by_weight, "best_weight": best}
    if args.chosen is not None:
        figures["chosen_weight"] = args.chosen
    write_result(
        "fusion_weight",
        args.title or f"BM25 fusion weight of adapted rerankers on {data.name} {args.split}",
        {
            "data": display_path(args.data),
            "split": args.split,
            "queries": len(data.queries),
            "top_n": 100,
            "max_length": args.max_length,
            "models": [display_path(m) for m in args.models],
            "chosen": args.chosen,
        },
        figures,
        args.output,
        argv=argv,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
