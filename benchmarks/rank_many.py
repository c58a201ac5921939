"""rank_many vs one rank call per query: forward passes and pairs/s on the same loaded model.

The server and the Ray actors merge many small requests into one ``rank_many`` call; this
measures what that buys: 32 SciFact test queries x their BM25 top-10 passages (the default),
scored as 32 ``rank`` calls and as one ``rank_many`` call, alternating, best of ``--repeat``.
Same process, same model, so the ratio is fair; results are checked equal.

    python benchmarks/rank_many.py                       # MiniLM-sized cross-encoder
    python benchmarks/rank_many.py --model runs/bench-model --queries 32 --docs 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workload import bm25_candidates, minilm_cross_encoder  # noqa: E402

from crossrank import Reranker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: MiniLM-sized)")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    model = args.model or str(minilm_cross_encoder())
    lists = bm25_candidates(args.queries, top_k=args.docs, seed=1)
    queries = [q for q, _ in lists]
    documents = [d for _, d in lists]
    pairs = sum(len(d) for d in documents)
    reranker = Reranker(model, device="cpu", max_length=args.max_length, batch_size=args.batch_size)
    reranker.rank(queries[0], documents[0])  # warm-up

    def timed(run):
        start_passes = reranker.stats()["forward_passes"]
        start = time.perf_counter()
        result = run()
        return (
            result,
            time.perf_counter() - start,
            reranker.stats()["forward_passes"] - start_passes,
        )

    best = {"rank x N": float("inf"), "rank_many": float("inf")}
    passes = {}
    for _ in range(args.repeat):
        looped, seconds, passes["rank x N"] = timed(
            lambda: [reranker.rank(q, d) for q, d in zip(queries, documents)]
        )
        best["rank x N"] = min(best["rank x N"], seconds)
        many, seconds, passes["rank_many"] = timed(lambda: reranker.rank_many(queries, documents))
        best["rank_many"] = min(best["rank_many"], seconds)
    worst = max(abs(a.score - b.score) for x, y in zip(looped, many) for a, b in zip(x, y))
    same_order = all([a.index for a in x] == [b.index for b in y] for x, y in zip(looped, many))
    rows = {
        name: {
            "forward_passes": passes[name],
            "pairs_per_s": round(pairs / best[name], 2),
            "seconds": round(best[name], 3),
        }
        for name in best
    }
    print(f"{args.queries} queries x {args.docs} documents = {pairs} pairs, model {model}")
    print("| call | forward passes | pairs/s | x rank loop |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        ratio = best["rank x N"] / best[name]
        print(f"| {name} | {row['forward_passes']} | {row['pairs_per_s']} | {ratio:.2f}x |")
    print(f"same order: {same_order}; max score difference {worst:.2e}")
    print(json.dumps({"pairs": pairs, "rows": rows, "same_order": same_order, "max_diff": worst}))


if __name__ == "__main__":
    main()
