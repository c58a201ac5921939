"""GPU check helpers: scores per dtype against float32, and speed against peers.

Used by :mod:`benchmarks.gpu_check`: precision (max/mean difference to float32 and ranking
agreement per query), pairs/s of crossrank, sentence-transformers ``CrossEncoder`` and a plain
transformers loop on the same pairs, and both on a trained checkpoint's real pairs (``--bundle``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

from benchmarks.contenders import transformers_loop

DTYPES = ("float32", "float16", "bfloat16")


def empty_cache(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def agreement(reference: List[List[float]], other: List[List[float]]) -> Dict[str, float]:
    """Per-query ranking agreement: same top-1, top-10 overlap, pairwise order kept."""
    top1, overlap, pairwise = [], [], []
    for ref, oth in zip(reference, other):
        r, o = torch.tensor(ref, dtype=torch.float64), torch.tensor(oth, dtype=torch.float64)
        k = min(10, len(ref))
        top1.append(float(r.argmax() == o.argmax()))
        overlap.append(len(set(r.topk(k).indices.tolist()) & set(o.topk(k).indices.tolist())) / k)
        dr, do = r[:, None] - r[None, :], o[:, None] - o[None, :]
        mask = dr != 0
        pairwise.append(float(((dr * do) > 0)[mask].float().mean()) if mask.any() else 1.0)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {
        "top1_same": mean(top1),
        "top10_overlap": mean(overlap),
        "pair_order_kept": mean(pairwise),
    }


def check_precision(model: str, device: str, queries, max_length: int, batch_size: int) -> Dict:
    from crossrank import Reranker

    scores = {}
    for dtype in DTYPES:
        rr = Reranker(
            model, device=device, dtype=dtype, max_length=max_length, batch_size=batch_size
        )
        scores[dtype] = [rr.compute_score([[q, d] for d in docs]) for q, docs in queries]
        del rr
        empty_cache(device)
    flat32 = [s for row in scores["float32"] for s in row]
    spread = statistics_std(flat32)
    out = {"score_std_fp32": spread}
    for dtype in DTYPES[1:]:
        diffs = [
            abs(a - b) for ra, rb in zip(scores["float32"], scores[dtype]) for a, b in zip(ra, rb)
        ]
        out[dtype] = {
            "max_abs_diff": max(diffs),
            "mean_abs_diff": sum(diffs) / len(diffs),
            **agreement(scores["float32"], scores[dtype]),
        }
    return out


def statistics_std(values: List[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))


def check_real(bundle: Path, device: str, speed_dtype, max_length: int, batch_size: int, repeat):
    """A trained checkpoint on real candidates: scores per dtype (kept for nDCG), and speed."""
    from crossrank import Reranker

    data = json.loads((bundle / "pairs.json").read_text())
    model = str(bundle / "model")
    max_length = data.get("max_length") or max_length  # the length the checkpoint was trained at
    order = [(q, d) for q, docs in data["candidates"].items() for d, _, _ in docs]
    pairs = [
        [data["queries"][q], text] for q, docs in data["candidates"].items() for _, text, _ in docs
    ]
    flat = {}
    for dtype in DTYPES:
        rr = Reranker(
            model, device=device, dtype=dtype, max_length=max_length, batch_size=batch_size
        )
        flat[dtype] = rr.compute_score(pairs)
        del rr
        empty_cache(device)
    runs = {dtype: {} for dtype in DTYPES}
    for dtype, scores in flat.items():
        for (q, d), score in zip(order, scores):
            runs[dtype].setdefault(q, {})[d] = score
    per_query = lambda dtype: [list(runs[dtype][q].values()) for q in data["candidates"]]  # noqa: E731
    precision = {"score_std_fp32": statistics_std(flat["float32"])}
    for dtype in DTYPES[1:]:
        diffs = [abs(a - b) for a, b in zip(flat["float32"], flat[dtype])]
        precision[dtype] = {
            "max_abs_diff": max(diffs),
            "mean_abs_diff": sum(diffs) / len(diffs),
            **agreement(per_query("float32"), per_query(dtype)),
        }
    queries = [
        (data["queries"][q], [text for _, text, _ in docs])
        for q, docs in data["candidates"].items()
    ]
    speed = check_speed(model, device, speed_dtype, queries, max_length, batch_size, repeat)
    return {
        "name": data["name"],
        "model": data.get("model", model),
        "device": str(torch.cuda.get_device_name(torch.device(device)))
        if device.startswith("cuda")
        else device,
        "pairs": len(pairs),
        "max_length": max_length,
        "precision": precision,
        "speed": speed,
        "runs": runs,
    }


def contenders(model: str, device: str, dtype: torch.dtype, max_length: int, batch_size: int):
    """name → function scoring a list of [query, passage] pairs (raw logits)."""
    from crossrank import Reranker

    rr = Reranker(model, device=device, dtype=dtype, max_length=max_length, batch_size=batch_size)
    found: Dict[str, Callable] = {"crossrank": rr.compute_score}
    try:
        from sentence_transformers import CrossEncoder

        encoder = CrossEncoder(
            model, device=device, max_length=max_length, activation_fn=torch.nn.Identity()
        )
        encoder.model.to(dtype)
        found["sentence-transformers CrossEncoder"] = lambda pairs: encoder.predict(
            pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True
        ).tolist()
    except ImportError:
        print("sentence-transformers is not installed: its row is left out", file=sys.stderr)
    # what a user writes: input order, padded batches, passage truncated
    found["plain transformers loop"] = transformers_loop(
        model, batch_size, max_length, device, dtype
    )
    return found


def check_speed(model, device, dtype, queries, max_length, batch_size, repeat) -> List[Dict]:
    pairs = [[q, d] for q, docs in queries for d in docs]
    rows, reference = [], None
    for name, score in contenders(model, device, dtype, max_length, batch_size).items():
        score(pairs[: 2 * batch_size])  # warm-up: kernels, allocator, tokenizer caches
        best, scores = math.inf, None
        for _ in range(repeat):
            empty_cache(device)
            started = time.perf_counter()
            scores = score(pairs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        reference = scores if reference is None else reference
        diff = max(abs(a - b) for a, b in zip(scores, reference))
        rows.append(
            {
                "contender": name,
                "pairs": len(pairs),
                "seconds": best,
                "pairs_per_s": len(pairs) / best,
                "max_abs_diff_to_crossrank": diff,
            }
        )
    for row in rows:
        row["x_crossrank"] = row["pairs_per_s"] / rows[0]["pairs_per_s"]
    empty_cache(device)
    return rows
