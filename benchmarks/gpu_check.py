"""GPU check: throughput and MFU with a profile, precision, speed against peers, the OOM split.

Made for a CUDA machine where nothing can be installed: it needs only torch, transformers (5.x)
and, for one contender, sentence-transformers; crossrank runs from the tree. Two random models are
built on the spot (no hub): a bge-reranker-base-sized BERT (12 x 768) and a MiniLM-L6-sized one
(6 x 384), with the WordPiece tokenizer of ``crossrank.testing`` (one token per word). Steps:

1. ``device="auto"`` picks CUDA (and float16);
2. fp32 vs fp16 vs bf16 scores of the same pairs: max difference, ranking agreement per query;
3. pairs/s of crossrank, sentence-transformers ``CrossEncoder`` and a plain transformers loop, all in
   fp16 on the same pairs and batch size, best of ``--repeat`` timed runs after a warm-up;
4. a batch that does not fit: the process's CUDA memory is capped (``set_per_process_memory_fraction``)
   so that a 512-pair batch of 512-token pairs runs out of memory; crossrank must split it, say so
   once and return the scores of an uncapped run;
5. with ``--bundle`` (made by ``gpu_real_set.py make``: a trained checkpoint and SciFact's BM25
   candidates): every pair scored in each dtype (the scores come back in the report, for
   ``gpu_real_set.py evaluate`` to turn into nDCG@10 where ir-measures is installed), and the
   contenders timed on these real pairs with the checkpoint's own tokenizer;
6. throughput (:mod:`benchmarks.gpu_throughput`, issue 34): MiniLM-L6-sized at 96 tokens on 6,000
   SciFact-like pairs (target 25,000 pairs/s), bge-reranker-base-sized on 2,048 pairs of 104-512
   tokens beside sentence-transformers ``CrossEncoder`` (targets 7,500 pairs/s, 2.5x), a
   Qwen3-Reranker-0.6B-sized decoder; model FLOPs utilization for each, and a profile: the
   pipeline's stages timed one by one (tokenize, collate, pin, copy, forward, logits back) beside
   the overlapped end-to-end time, and ``torch.profiler``'s top operators.

Run from the repository root (``PYTHONPATH=src`` where crossrank is not installed). Writes a JSON
result (``benchmarks/common.py``; ``--output``) and, with ``--report``, the full report with every
real pair's scores, which ``gpu_real_set evaluate`` turns into nDCG@10::

    PYTHONPATH=src python -m benchmarks.gpu_check                         # < 5 min on a GPU
    PYTHONPATH=src python -m benchmarks.gpu_check --device cpu --quick    # every step, tiny
    PYTHONPATH=src python -m benchmarks.gpu_check --device cpu --smoke    # throughput, tiny (<20 s)
    PYTHONPATH=src python -m benchmarks.gpu_check --sections throughput   # step 6 alone
    PYTHONPATH=src python -m benchmarks.gpu_check --bundle .gpu/bundle --report runs/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict

import torch

from benchmarks import gpu_throughput
from benchmarks.common import add_output_argument, write_result
from benchmarks.gpu_models import build_model, make_queries  # noqa: F401 - gpu_compile's import
from benchmarks.gpu_peers import DTYPES, check_precision, check_real, check_speed, empty_cache

SIZES = {  # name: (layers, hidden, heads, intermediate)
    "bge-base-sized": (12, 768, 12, 3072),
    "MiniLM-L6-sized": (6, 384, 12, 1536),
}
QUICK_SIZES = {
    "bge-base-sized (quick: 2 x 64)": (2, 64, 4, 128, 0.3),
    "MiniLM-sized (quick: 1 x 32)": (1, 32, 4, 64, 0.3),
}
SECTIONS = ("auto", "precision", "speed", "oom", "throughput")


def check_auto(model: str) -> Dict:
    """``Reranker(model)`` with the default ``device="auto"``: CUDA and float16 where there is CUDA."""
    from crossrank import Reranker

    rr = Reranker(model)
    picked, dtype = rr.device, str(rr.dtype).replace("torch.", "")
    cuda = torch.cuda.is_available()
    ok = (picked.type, dtype) == ("cuda", "float16") if cuda else picked.type == "cpu"
    del rr
    return {"picked": str(picked), "dtype": dtype, "cuda_available": cuda, "ok": ok}


def check_oom_split(model: str, device: str, max_length: int, budget_gib: float) -> Dict:
    """Cap this process's CUDA memory so that one 512-pair batch cannot fit; crossrank must split."""
    from crossrank import CrossrankWarning, Reranker
    from crossrank.errors import reset_notes

    if not device.startswith("cuda"):
        return {
            "skipped": f"no CUDA device ({device}): an out-of-memory split needs an accelerator"
        }
    queries = make_queries(1, 512, range(max_length, max_length + 50), seed=3)  # all full length
    pairs = [[queries[0][0], d] for d in queries[0][1]]
    rr = Reranker(model, device=device, dtype="float16", max_length=max_length, batch_size=32)
    expected = rr.compute_score(pairs)
    empty_cache(device)
    index = torch.device(device).index or torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    cap = (torch.cuda.memory_allocated(index) + budget_gib * 2**30) / total
    reset_notes()
    torch.cuda.reset_peak_memory_stats(index)
    torch.cuda.set_per_process_memory_fraction(min(cap, 1.0), index)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            got = rr.compute_score(pairs, batch_size=len(pairs))  # one batch of 512 pairs
            seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated(index) / 2**30
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, index)
        empty_cache(device)
    notes = [str(w.message) for w in caught if issubclass(w.category, CrossrankWarning)]
    split = any("out of memory" in n for n in notes)
    diff = max(abs(a - b) for a, b in zip(got, expected))
    return {
        "pairs": len(pairs),
        "tokens_per_pair": max_length,
        "memory_cap_gib": budget_gib,
        "split_happened": split,
        "note": next((n for n in notes if "out of memory" in n), None),
        "max_abs_diff_to_batch_32": diff,
        "seconds": seconds,
        "peak_allocated_gib": peak,
        "ok": split and diff < 0.05,
    }


def environment(device: str) -> Dict:
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
    }
    try:
        import sentence_transformers

        env["sentence_transformers"] = sentence_transformers.__version__
    except ImportError:
        env["sentence_transformers"] = None
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            capability=f"{props.major}.{props.minor}",
        )
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def markdown(report: Dict) -> str:
    """The report as Markdown tables (a failed step shows its error)."""
    env, auto = report["environment"], report.get("auto", {})
    lines = [f"GPU check on {env.get('gpu', env['device'])}, torch {env['torch']}, "
             f"transformers {env['transformers']}, sentence-transformers {env['sentence_transformers']}",
             "", f"device='auto' picked {auto.get('picked')}, {auto.get('dtype')} (ok: {auto.get('ok')})", "",
             "| model | dtype | max abs diff to fp32 | mean abs diff | fp32 score std | top-1 same "
             "| top-10 overlap | pair order kept |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for model, result in report["precision"].items():
        if "error" in result:
            lines.append(f"| {model} | {result['error']} | | | | | | |")
            continue
        for dtype in DTYPES[1:]:
            r = result[dtype]
            lines.append(f"| {model} | {dtype} | {r['max_abs_diff']:.2e} | {r['mean_abs_diff']:.2e} | "
                         f"{result['score_std_fp32']:.2e} | {r['top1_same']:.3f} | {r['top10_overlap']:.3f} | "
                         f"{r['pair_order_kept']:.4f} |")  # fmt: skip
    lines += ["", f"| model | contender ({report['speed_dtype']}) | pairs | pairs/s | x crossrank "
              "| max abs diff to crossrank |", "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for model, rows in report["speed"].items():
        for r in [rows] if isinstance(rows, dict) else rows:
            if "error" in r:
                lines.append(f"| {model} | {r['error']} | | | | |")
                continue
            lines.append(f"| {model} | {r['contender']} | {r['pairs']} | {r['pairs_per_s']:.1f} | "
                         f"{r['x_crossrank']:.2f} | {r['max_abs_diff_to_crossrank']:.2e} |")  # fmt: skip
    oom = report.get("oom_split", {"error": "not run"})
    if "skipped" in oom or "error" in oom:
        text = oom.get("skipped") or oom["error"]
    else:
        text = (f"{oom['pairs']} pairs x {oom['tokens_per_pair']} tokens in one batch under a "
                f"{oom['memory_cap_gib']} GiB cap: split {oom['split_happened']}, max abs diff to "
                f"batch 32 {oom['max_abs_diff_to_batch_32']:.2e}, {oom['seconds']:.1f} s, peak "
                f"{oom['peak_allocated_gib']:.2f} GiB (ok: {oom['ok']})")  # fmt: skip
    lines += ["", f"OOM split: {text}"]
    real = report.get("real")
    if real and "error" in real:
        lines += ["", f"Real checkpoint: {real['error']}"]
    elif real:
        p = real["precision"]
        lines += ["", f"Real checkpoint {real['model']} on {real['name']} ({real['pairs']} pairs, "
                  f"max_length {real.get('max_length')}), "
                  f"fp32 score std {p['score_std_fp32']:.2f}:", "",
                  "| dtype | max abs diff to fp32 | mean abs diff | top-1 same | top-10 overlap | pair order kept |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for dtype in DTYPES[1:]:
            r = p[dtype]
            lines.append(f"| {dtype} | {r['max_abs_diff']:.2e} | {r['mean_abs_diff']:.2e} | {r['top1_same']:.3f} "
                         f"| {r['top10_overlap']:.3f} | {r['pair_order_kept']:.4f} |")  # fmt: skip
        lines += ["", f"| contender ({report['speed_dtype']}, real pairs) | pairs/s | x crossrank "
                  "| max abs diff to crossrank |", "| --- | ---: | ---: | ---: |"]  # fmt: skip
        for r in real["speed"]:
            lines.append(f"| {r['contender']} | {r['pairs_per_s']:.1f} | {r['x_crossrank']:.2f} "
                         f"| {r['max_abs_diff_to_crossrank']:.2e} |")  # fmt: skip
    throughput = report.get("throughput")
    if throughput and isinstance(report.get("peaks"), tuple):
        lines += ["", gpu_throughput.markdown(throughput, report["peaks"])]
    lines += ["", f"Total {report['seconds']:.0f} s"]
    return "\n".join(lines)


def device_peaks(device: str):
    """(the device's dense fp16 peak from its name or None, a measured matmul's FLOP/s)."""
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return gpu_throughput.spec_peak(device), gpu_throughput.matmul_peak(device, dtype)


def step(title: str, function, *args):
    """Run one check; a failure is recorded in the report instead of ending the run."""
    print(title, file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - one GPU run: keep what the other steps found
        import traceback

        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}"[:500]}
    finally:
        print(f"  {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny models and few pairs (CPU test)")
    parser.add_argument(
        "--smoke", action="store_true", help="the throughput step alone, tiny (CPU test, < 20 s)"
    )
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="steps to run"
    )
    parser.add_argument(
        "--report",
        "--out",
        type=Path,
        help="also write the full report here (with the real pairs' scores, for gpu_real_set)",
    )
    add_output_argument(parser)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--oom-budget-gib", type=float, default=2.0)
    parser.add_argument(
        "--bundle", type=Path, help="a folder from gpu_real_set.py make: trained model + real pairs"
    )
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("CUDA is not available here; pass --device cpu (with --quick for a short run)")
    if args.smoke:
        args.quick, args.sections, args.repeat = True, ["throughput"], 1
    started = time.perf_counter()
    sizes = QUICK_SIZES if args.quick else SIZES
    precision_set = make_queries(4 if args.quick else 16, 8 if args.quick else 32, range(20, 300))
    speed_set = make_queries(
        4 if args.quick else 32, 8 if args.quick else 64, range(100, 500), seed=1
    )
    speed_dtype = (
        torch.float16 if args.device.startswith("cuda") else torch.float32
    )  # fp16 crawls on CPU
    report = {
        "environment": environment(args.device),
        "precision": {},
        "speed": {},
        "speed_dtype": str(speed_dtype).replace("torch.", ""),
    }
    wanted = set(args.sections)
    with tempfile.TemporaryDirectory() as tmp:
        if "throughput" in wanted:  # first: issue 34's figures, while the device is fresh
            shapes = gpu_throughput.SMOKE_SHAPES if args.quick else gpu_throughput.SHAPES
            report["peaks"] = peaks = step("peak FLOP/s", device_peaks, args.device)
            report["throughput"] = {
                name: step(f"{name}: throughput", gpu_throughput.measure, name, spec, Path(tmp),
                           args.device, args.repeat, peaks)
                for name, spec in shapes.items()
            }  # fmt: skip
        for name, shape in sizes.items() if wanted - {"throughput"} else ():
            model = build_model(Path(tmp) / name.split()[0], *shape)
            if "auto" in wanted and "auto" not in report:
                report["auto"] = step("device='auto'", check_auto, model)
            if "precision" in wanted:
                report["precision"][name] = step(
                    f"{name}: precision", check_precision, model, args.device, precision_set,
                    args.max_length, args.batch_size,
                )  # fmt: skip
            if "speed" in wanted:
                report["speed"][name] = step(
                    f"{name}: speed", check_speed, model, args.device, speed_dtype, speed_set,
                    args.max_length, args.batch_size, args.repeat,
                )  # fmt: skip
            if "oom" in wanted and name == next(iter(sizes)):
                report["oom_split"] = step(
                    f"{name}: out-of-memory split", check_oom_split, model, args.device,
                    args.max_length, args.oom_budget_gib,
                )  # fmt: skip
    if args.bundle is not None:
        report["real"] = step(
            f"real checkpoint ({args.bundle})", check_real, args.bundle, args.device, speed_dtype,
            args.max_length, args.batch_size, args.repeat,
        )  # fmt: skip
    report["seconds"] = time.perf_counter() - started
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    settings = {
        "device": args.device,
        "quick": args.quick,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "repeat": args.repeat,
        "oom_budget_gib": args.oom_budget_gib,
        "bundle": str(args.bundle) if args.bundle else None,
        "speed_dtype": report["speed_dtype"],
        "sections": " ".join(args.sections),
    }
    title = "GPU check: throughput and MFU, precision per dtype, speed against peers, OOM split"
    write_result("gpu_check", title, settings, figures(report), args.output, argv=argv)
    return report


def figures(report: Dict) -> Dict:
    """The report as flat tables (the real pairs' scores left out)."""

    def flat(row: Dict) -> Dict:
        return {k: v for k, v in row.items() if isinstance(v, (str, int, float, bool, type(None)))}

    precision, speed = [], []
    real = report.get("real") or {}
    sets = list(report["precision"].items())
    if "precision" in real:
        sets.append((f"trained: {real['model']}", real["precision"]))
    for model, result in sets:
        for dtype in DTYPES[1:]:
            if dtype in result:
                precision.append(
                    {
                        "model": model,
                        "dtype": dtype,
                        **flat(result[dtype]),
                        "score_std_fp32": result["score_std_fp32"],
                    }  # fmt: skip
                )
    speed_sets = list(report["speed"].items())
    if "speed" in real:
        speed_sets.append((f"trained: {real['model']}, {real['name']}", real["speed"]))
    for model, rows in speed_sets:
        for row in [rows] if isinstance(rows, dict) else rows:
            speed.append({"model": model, **flat(row)})
    out: Dict = {"rows": speed, "precision": precision}
    if report.get("throughput"):
        tables = gpu_throughput.figure_rows(report["throughput"])
        out.update({k: v for k, v in tables.items() if v})
        spec, measured = report["peaks"] if isinstance(report["peaks"], tuple) else (None, 0.0)
        out["peak_fp16_spec_tflops"] = spec / 1e12 if spec else None
        out["matmul_tflops"] = measured / 1e12
    for name in ("rows", "precision"):
        if not out[name]:
            out.pop(name)
    if not any(isinstance(v, list) for v in out.values()):
        out["rows"] = [{"error": "nothing measured"}]
    out.update({f"auto_{k}": v for k, v in flat(report.get("auto", {})).items()})
    oom = flat(report.get("oom_split", {}))
    if oom:
        out["oom_split"] = [oom]
    out["seconds"] = round(report["seconds"], 1)
    return out


if __name__ == "__main__":
    main()
