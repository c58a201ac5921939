"""In-process throughput on a GPU, model FLOPs utilization, and where a batch's time goes.

Issue 34's measurements, one shape at a time (random weights, SciFact-like token counts):

- MiniLM-L6-sized (6 x 384) at max_length 96 on 6,000 pairs: crossrank pairs/s (target 25,000);
- bge-reranker-base-sized (12 x 768) on 2,048 pairs of 104-512 tokens: crossrank and
  sentence-transformers ``CrossEncoder`` (targets 7,500 pairs/s and 2.5x the CrossEncoder);
- Qwen3-Reranker-0.6B-sized (28 x 1024, GQA 16/8) on 512 pairs at max_length 512: reported.

Each shape: best of ``repeat`` timed ``compute_score`` calls after a warm-up, model FLOPs
utilization (``2 x non-embedding parameters x tokens + 4 x layers x tokens² x hidden`` per pair
over the device's dense fp16 peak, and over a measured fp16 matmul), and a profile: the stages of
the pipeline timed one after another with the device synchronized (tokenize, plan, collate, pin,
copy to the device, forward, logits back, head) beside the overlapped end-to-end time, plus
``torch.profiler``'s top operators for a few batches.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from benchmarks.gpu_models import build_decoder_model, build_model, scifact_like_pairs

# name: model shape, pairs, max_length, least tokens a pair, target pairs/s on a GPU
SHAPES = {
    "MiniLM-L6-sized": dict(
        kind="bert", shape=(6, 384, 12, 1536), pairs=6000, max_length=96, min_tokens=0,
        target=25_000, contender=False,
    ),
    "bge-reranker-base-sized": dict(
        kind="bert", shape=(12, 768, 12, 3072), pairs=2048, max_length=512, min_tokens=104,
        target=7_500, contender=True,
    ),
    "Qwen3-Reranker-0.6B-sized": dict(
        kind="qwen3", shape=(28, 1024, 16, 3072, 8), pairs=512, max_length=512, min_tokens=104,
        target=None, contender=False,
    ),
}  # fmt: skip
SMOKE_SHAPES = {
    "MiniLM-L6-sized (smoke: 1 x 32)": dict(SHAPES["MiniLM-L6-sized"], shape=(1, 32, 4, 64), pairs=48),
    "bge-reranker-base-sized (smoke: 2 x 64)": dict(
        SHAPES["bge-reranker-base-sized"], shape=(2, 64, 4, 128), pairs=24, max_length=128
    ),
    "Qwen3-Reranker-0.6B-sized (smoke: 2 x 32)": dict(
        SHAPES["Qwen3-Reranker-0.6B-sized"], shape=(2, 32, 4, 64, 2), pairs=8, max_length=128
    ),
}  # fmt: skip
CONTENDER_RATIO = 2.5  # crossrank over sentence-transformers CrossEncoder, bge-base-sized
# Dense (no sparsity) fp16/bf16 tensor-core peaks, FLOP/s, by device name (longest match first).
PEAK_FP16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "GH200": 989e12,
             "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12, "T4": 65e12}  # fmt: skip


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(name: str, spec: Dict, folder: Path) -> str:
    path = folder / name.split()[0]
    if spec["kind"] == "qwen3":
        return build_decoder_model(path, *spec["shape"])
    return build_model(path, *spec["shape"])


def spec_peak(device: str) -> Optional[float]:
    """The device's dense fp16 peak from its name, None where unknown (a CPU, another GPU)."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key in sorted(PEAK_FP16, key=len, reverse=True):
        if key in name:
            return PEAK_FP16[key]
    return None


def matmul_peak(device: str, dtype: torch.dtype, size: int = 8192, rounds: int = 10) -> float:
    """FLOP/s of a square matmul in ``dtype``: what this device reaches at best."""
    size = size if device.startswith("cuda") else 512
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    started = time.perf_counter()
    for _ in range(rounds):
        a @ b
    sync(device)
    return 2 * size**3 * rounds / (time.perf_counter() - started)


def model_flops(model, lengths: List[int]) -> float:
    """FLOPs of a forward over pairs of these token counts (no padding counted)."""
    config = model.config
    params = sum(
        p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n
    )
    layers, hidden = config.num_hidden_layers, config.hidden_size
    return sum(2 * params * t + 4 * layers * t * t * hidden for t in lengths)


def best_time(score: Callable, pairs, device: str, repeat: int):
    score(pairs[: min(len(pairs), 256)])  # warm-up: kernels, allocator, tokenizer caches
    best, scores = math.inf, None
    for _ in range(repeat):
        sync(device)
        started = time.perf_counter()
        scores = score(pairs)
        sync(device)
        best = min(best, time.perf_counter() - started)
    return best, scores


class Stages:
    """Seconds per stage, the device synchronized at each stage's end."""

    def __init__(self, device: str) -> None:
        self.device, self.seconds = device, {}

    @contextmanager
    def __call__(self, stage: str):
        started = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def profile(reranker, pairs, device: str, end_to_end: float) -> Dict:
    """Where time goes: each pipeline stage alone (synchronized), and the top operators."""
    from crossrank.batching import collate, plan_batches
    from crossrank.pipeline import MAX_PADDING, Request

    pipeline, family = reranker._pipeline, reranker.model_family
    backend, timed = pipeline.backend, Stages(device)
    request = Request.for_call(reranker.settings)
    budget = pipeline.max_batch_tokens(request)
    encoder = family.encoder(request.max_length, request.query_max_length)
    with timed("tokenize"):
        features = encoder.encode([q for q, _ in pairs], [p for _, p in pairs])
    lengths = [len(f["input_ids"]) for f in features]
    with timed("plan"):
        if budget is None:
            batches = plan_batches(lengths, request.batch_size)
        else:
            batches = plan_batches(lengths, request.batch_size, budget, MAX_PADDING)
    stage = getattr(backend, "stage", lambda batch: batch)
    for batch in batches:
        with timed("collate"):
            tensors = collate(
                [features[i] for i in batch], family.pad_token_id, family.padding_side
            )
        with timed("pin"):
            tensors = stage(tensors)
        with timed("copy to device"):
            tensors = {k: v.to(backend.device, non_blocking=True) for k, v in tensors.items()}
        with timed("forward"), torch.inference_mode():
            logits = family.forward(backend.model, tensors)
        with timed("logits to host"):
            logits = logits.to("cpu", torch.float32)
        with timed("head"):
            family.head(logits).tolist()
    total = sum(timed.seconds.values())
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    out = {
        "stages_s": {k: round(v, 4) for k, v in timed.seconds.items()},
        "stage_share": {k: round(v / total, 3) for k, v in timed.seconds.items()},
        "serial_s": round(total, 4),
        "end_to_end_s": round(end_to_end, 4),
        "overlap_saved_s": round(total - end_to_end, 4),
        "device_busy_share": round(timed.seconds["forward"] / end_to_end, 3),
        "batches": len(batches),
        "rows_per_batch": round(len(pairs) / len(batches), 1),
        "max_batch_tokens": budget,
        "padding_fraction": round(1 - sum(lengths) / computed, 4),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
    }
    out["top_ops"] = top_operators(family, backend, features, batches[:3], device)
    return out


def top_operators(family, backend, features, batches, device: str, rows: int = 12) -> str:
    """``torch.profiler``'s table of the costliest operators over a few batches."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from crossrank.batching import collate

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities) as prof, torch.inference_mode():
        for batch in batches:
            tensors = collate(
                [features[i] for i in batch], family.pad_token_id, family.padding_side
            )
            tensors = {k: v.to(backend.device) for k, v in tensors.items()}
            family.forward(backend.model, tensors).to("cpu")
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def cross_encoder_score(model: str, device: str, dtype, max_length: int, batch_size: int):
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(model, device=device, max_length=max_length,
                           activation_fn=torch.nn.Identity())  # fmt: skip
    encoder.model.to(dtype)
    return lambda pairs: encoder.predict(
        pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
    ).tolist()


def measure(name: str, spec: Dict, folder: Path, device: str, repeat: int, peaks) -> Dict:
    """One shape: crossrank's pairs/s and MFU, the contender where asked, the profile."""
    from crossrank import Reranker

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = build(name, spec, folder)
    pairs = scifact_like_pairs(spec["pairs"], spec["max_length"], spec["min_tokens"])
    reranker = Reranker(model, device=device, dtype=dtype, max_length=spec["max_length"])
    seconds, scores = best_time(reranker.compute_score, pairs, device, repeat)
    encoder = reranker.encoder
    lengths = [len(f["input_ids"]) for f in encoder.encode(*zip(*pairs))]
    flops = model_flops(reranker.model, lengths)
    spec_fp16, measured = peaks
    row = {
        "model": name, "contender": "crossrank", "dtype": str(dtype).replace("torch.", ""),
        "pairs": len(pairs), "max_length": spec["max_length"], "mean_tokens": sum(lengths) / len(lengths),
        "seconds": seconds, "pairs_per_s": len(pairs) / seconds,
        "gflop_per_pair": flops / len(pairs) / 1e9, "tflops": flops / seconds / 1e12,
        "mfu_spec": flops / seconds / spec_fp16 if spec_fp16 else None,
        "mfu_matmul": flops / seconds / measured,
        "target_pairs_per_s": spec["target"] if device.startswith("cuda") else None,
    }  # fmt: skip
    if row["target_pairs_per_s"]:
        row["meets_target"] = row["pairs_per_s"] >= spec["target"]
    rows = [row]
    if spec["contender"]:
        try:
            score = cross_encoder_score(model, device, dtype, spec["max_length"], 64)
            st_seconds, st_scores = best_time(score, pairs, device, repeat)
            diff = max(abs(a - b) for a, b in zip(scores, st_scores))
            ratio = st_seconds / seconds
            rows.append({
                "model": name, "contender": "sentence-transformers CrossEncoder",
                "dtype": row["dtype"], "pairs": len(pairs), "seconds": st_seconds,
                "pairs_per_s": len(pairs) / st_seconds, "tflops": flops / st_seconds / 1e12,
                "mfu_spec": flops / st_seconds / spec_fp16 if spec_fp16 else None,
                "mfu_matmul": flops / st_seconds / measured, "max_abs_diff_to_crossrank": diff,
            })  # fmt: skip
            row["x_cross_encoder"] = ratio
            if device.startswith("cuda"):
                row["meets_contender_target"] = ratio >= CONTENDER_RATIO
        except ImportError:
            rows.append({"model": name, "contender": "sentence-transformers CrossEncoder",
                         "error": "sentence-transformers is not installed"})  # fmt: skip
    return {"rows": rows, "profile": profile(reranker, pairs, device, seconds)}


def markdown(results: Dict[str, Dict], peaks) -> str:
    spec_fp16, measured = peaks
    peak = f"{spec_fp16 / 1e12:.0f} TFLOP/s spec" if spec_fp16 else "no spec peak"
    lines = [f"Throughput (fp16 peak: {peak}; measured matmul {measured / 1e12:.1f} TFLOP/s)", "",
             "| model | contender | pairs | tokens | pairs/s | TFLOP/s | MFU (spec) | MFU (matmul) | target |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    pct = lambda v: f"{100 * v:.1f}%" if v is not None else "-"  # noqa: E731
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | {result['error']} | | | | | | | |")
            continue
        for r in result["rows"]:
            if "error" in r:
                lines.append(f"| {name} | {r['contender']}: {r['error']} | | | | | | | |")
                continue
            target = r.get("meets_target", r.get("meets_contender_target", "-"))
            lines.append(f"| {name} | {r['contender']} | {r['pairs']} | {r.get('mean_tokens', 0):.0f} "
                         f"| {r['pairs_per_s']:.0f} | {r['tflops']:.2f} | {pct(r['mfu_spec'])} "
                         f"| {pct(r['mfu_matmul'])} | {target} |")  # fmt: skip
    for name, result in results.items():
        p = result.get("profile")
        if not p:
            continue
        stages = ", ".join(f"{k} {v:.3f} s ({100 * p['stage_share'][k]:.0f}%)"
                           for k, v in p["stages_s"].items())  # fmt: skip
        lines += ["", f"Profile, {name}: {stages}; serial {p['serial_s']:.3f} s vs end-to-end "
                  f"{p['end_to_end_s']:.3f} s; device busy {100 * p['device_busy_share']:.0f}%; "
                  f"{p['batches']} batches of {p['rows_per_batch']} rows, budget "
                  f"{p['max_batch_tokens']} tokens, padding {100 * p['padding_fraction']:.1f}%",
                  "", "```", p["top_ops"], "```"]  # fmt: skip
    return "\n".join(lines)


def figure_rows(results: Dict[str, Dict]) -> Dict[str, List[Dict]]:
    """Flat tables for the JSON result: throughput rows and one profile row per shape."""
    scalar = (str, int, float, bool, type(None))
    rows, profiles = [], []
    for name, result in results.items():
        if "error" in result:
            rows.append({"model": name, "error": result["error"]})
            continue
        rows += [{k: v for k, v in r.items() if isinstance(v, scalar)} for r in result["rows"]]
        p = result["profile"]
        flat = {k: v for k, v in p.items() if isinstance(v, scalar) and k != "top_ops"}
        flat.update({f"{k}_s": v for k, v in p["stages_s"].items()})
        profiles.append({"model": name, **flat})
    return {"throughput": rows, "profile": profiles}
