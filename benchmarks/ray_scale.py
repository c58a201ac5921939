"""Ray Data overhead and scale: pairs/s of crossrank.ray.rerank_dataset vs the in-process loop.

Same pairs (SciFact test queries x BM25 candidates, max_length 512), same model, same 2 CPUs:

- ``in-process``: one ``Reranker.compute_score`` call over every pair, torch on 2 threads;
- ``ray 1x2``: ``rerank_dataset`` with 1 actor x 2 threads (the overhead of Ray Data; goal >= 0.85x);
- ``ray 2x1``: 2 actors x 1 thread (the same cores split between two model copies).

Ray is timed at steady state: from the first scored block reaching the driver to the last one,
over the pairs after that first block, so actor start-up and model loading (paid once per job,
seconds against the hours of a real job) are left out; they are reported apart as ``startup_s``.
On a GPU machine ``--gpu`` adds ``ray 1 GPU`` (1 actor, 1 GPU) for the extrapolation table.

    python -m benchmarks.ray_scale                          # MiniLM-sized cross-encoder, 512 pairs
    python -m benchmarks.ray_scale --model base --pairs 256 # bge-reranker-base-sized
    python -m benchmarks.ray_scale --pairs 64 --block-size 16   # a short run on a busy machine
    python -m benchmarks.ray_scale --model tiny --synthetic --pairs 8 --queries 2 --block-size 4
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

from benchmarks.common import add_output_argument, display_path, write_result
from benchmarks.workload import add_model_arguments, candidates, resolve_model

MAX_LENGTH = 512


def build_pairs(pairs: int, queries: int, seed: int, synthetic: bool) -> List[Dict[str, str]]:
    per_query = -(-pairs // queries)
    rows: List[Dict[str, str]] = []
    for query, passages in candidates(queries, top_k=per_query, seed=seed, synthetic=synthetic):
        rows += [{"query": query, "text": p} for p in passages[: pairs - len(rows)]]
    return rows


def in_process(model: str, rows: List[Dict[str, str]], threads: int, device: str) -> Dict:
    import torch

    from crossrank import Reranker

    torch.set_num_threads(threads)
    reranker = Reranker(model, device=device, max_length=MAX_LENGTH)
    reranker.compute_score([[r["query"], r["text"]] for r in rows[:8]])  # warm-up
    pairs = [[r["query"], r["text"]] for r in rows]
    began = time.perf_counter()
    reranker.compute_score(pairs)
    seconds = time.perf_counter() - began
    return {"config": "in-process", "pairs": len(rows), "seconds": seconds, "startup_s": 0.0}


def on_ray(
    name: str, model: str, rows, actors: int, cpus: float, gpus: float, block: int, device: str
) -> Dict:
    import ray.data

    from crossrank.ray import rerank_dataset

    blocks = [rows[i : i + block] for i in range(0, len(rows), block)]
    ds = ray.data.from_items(rows, override_num_blocks=len(blocks))
    scored = rerank_dataset(
        ds,
        model=model,
        num_actors=actors,
        num_cpus_per_actor=cpus,
        num_gpus_per_actor=gpus,
        batch_size=block,
        reranker_kwargs={"max_length": MAX_LENGTH, "device": device},
    )
    began = time.perf_counter()
    first, first_rows, total = None, 0, 0
    for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
        total += batch.num_rows
        if first is None:
            first, first_rows = time.perf_counter(), batch.num_rows
    last = time.perf_counter()
    assert total == len(rows), (total, len(rows))
    steady = last - first
    return {
        "config": name,
        "pairs": total - first_rows,  # pairs scored after the first block arrived
        "seconds": steady,
        "startup_s": round(first - began, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, default="minilm")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=32, help="pairs per Ray block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu", action="store_true", help="also 1 actor on 1 GPU")
    add_output_argument(parser)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    rows = build_pairs(args.pairs, args.queries, args.seed, args.synthetic)

    import ray

    results = [in_process(model, rows, threads=2, device="cpu")]
    ray.init(
        num_cpus=2,
        num_gpus=1 if args.gpu else 0,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        block = args.block_size
        results.append(on_ray("ray 1x2", model, rows, 1, 2, 0, block, "cpu"))
        results.append(on_ray("ray 2x1", model, rows, 2, 1, 0, block, "cpu"))
        if args.gpu:
            results.append(on_ray("ray 1 GPU", model, rows, 1, 1, 1, block, "cuda"))
    finally:
        ray.shutdown()
    base = results[0]["pairs"] / results[0]["seconds"]
    print(f"model {model}, {len(rows)} pairs, max_length {MAX_LENGTH}, block {args.block_size}")
    print("| config | pairs timed | seconds | pairs/s | vs in-process | start-up s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        rate = r["pairs"] / r["seconds"]
        r["pairs_per_s"], r["ratio"] = round(rate, 2), round(rate / base, 3)
        print(
            f"| {r['config']} | {r['pairs']} | {r['seconds']:.1f} | {r['pairs_per_s']} | "
            f"{r['ratio']}x | {r['startup_s']} |"
        )
    settings = {
        "model": display_path(model),
        "pairs": len(rows),
        "queries": args.queries,
        "workload": "synthetic" if args.synthetic else "SciFact test queries x BM25 candidates",
        "max_length": MAX_LENGTH,
        "block_size": args.block_size,
        "seed": args.seed,
        "gpu": args.gpu,
    }
    title = "Ray Data rerank_dataset vs the in-process loop: steady-state pairs/s"
    write_result("ray_scale", title, settings, {"rows": results}, args.output, argv=argv)


if __name__ == "__main__":
    main()
