"""An older crossrank tree vs this one, alternating, per contender: pairs/s, pairs per CPU-second.

Each run is ``benchmarks.contenders`` in its own process with the tree on ``PYTHONPATH``; scores
of the two trees are compared (a refactor must not move them).

    git worktree add /tmp/wt-old d6c87d3 && python -m benchmarks.experiments.before_after
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import ROOT
from benchmarks.throughput import build_workload
from benchmarks.workload import minilm_cross_encoder

BEFORE = os.environ.get("BEFORE_SRC", "/tmp/wt-old/src")
AFTER = str(ROOT / "src")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the old tree's src/ (env BEFORE_SRC)")
    args = parser.parse_args(argv)
    model = str(minilm_cross_encoder())
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "before_after_workload.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(build_workload(64, 2, 0), handle)
    versions = {"before": args.before, "after": AFTER}
    rows = {}
    for round_ in range(2):
        for contender in ("crossrank-torch", "crossrank-onnx"):
            for label, src in versions.items():
                env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="2")
                command = [sys.executable, "-m", "benchmarks.contenders", "--contender"]
                command += [contender, "--model", model, "--workload", path, "--threads", "2"]
                out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
                if out.returncode:
                    print(label, contender, "failed:", out.stderr[-400:])
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                per_cpu = result["pairs"] / result["cpu_seconds"]
                best = rows.get((contender, label))
                if best is None or per_cpu > best["per_cpu"]:
                    rows[(contender, label)] = {
                        "per_cpu": per_cpu,
                        "pairs_s": result["pairs_per_s"],
                        "scores": result["scores"],
                    }
                print(round_, contender, label, f"{per_cpu:.2f}", flush=True)
    print("| contender | tree | pairs per CPU-s | pairs/s | max diff to before |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (contender, label), row in rows.items():
        reference = rows.get((contender, "before"), row)["scores"]
        diff = max(abs(a - b) for a, b in zip(row["scores"], reference))
        print(
            f"| {contender} | {label} | {row['per_cpu']:.2f} | {row['pairs_s']:.2f} | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
