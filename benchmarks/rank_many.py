"""rank_many vs one rank call per query: forward passes and pairs/s on the same loaded model.

The server and the Ray actors merge many small requests into one ``rank_many`` call; this
measures what that buys: 32 SciFact test queries x their BM25 top-10 passages (the default),
scored as 32 ``rank`` calls and as one ``rank_many`` call, alternating, best of ``--repeat``.
Same process, same model, so the ratio is fair; results are checked equal.

    python -m benchmarks.rank_many                       # MiniLM-sized cross-encoder
    python -m benchmarks.rank_many --model base --queries 32 --docs 10
    python -m benchmarks.rank_many --model tiny --synthetic --queries 2 --docs 2 --repeat 1  # smoke
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import add_output_argument, display_path, write_result
from benchmarks.workload import add_model_arguments, candidates, resolve_model
from crossrank import Reranker


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, default="minilm")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    add_output_argument(parser)
    args = parser.parse_args(argv)

    model = resolve_model(args.model)
    lists = candidates(args.queries, top_k=args.docs, seed=1, synthetic=args.synthetic)
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
    rows = [
        {
            "call": name,
            "forward_passes": passes[name],
            "pairs_per_s": round(pairs / best[name], 2),
            "seconds": round(best[name], 3),
            "x_rank_loop": round(best["rank x N"] / best[name], 3),
        }
        for name in best
    ]
    print(f"{args.queries} queries x {args.docs} documents = {pairs} pairs, model {model}")
    print("| call | forward passes | pairs/s | x rank loop |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['call']} | {row['forward_passes']} | {row['pairs_per_s']} "
            f"| {row['x_rank_loop']:.2f}x |"
        )
    print(f"same order: {same_order}; max score difference {worst:.2e}")
    settings = {
        "model": display_path(model),
        "queries": args.queries,
        "documents_per_query": args.docs,
        "pairs": pairs,
        "workload": "synthetic" if args.synthetic else "SciFact test queries x BM25 top-docs",
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "rounds": args.repeat,
    }
    figures = {"rows": rows, "same_order": same_order, "max_score_diff": worst}
    title = "rank_many vs one rank call per query, same loaded model, best round"
    write_result("rank_many", title, settings, figures, args.output, argv=argv)


if __name__ == "__main__":
    main()
