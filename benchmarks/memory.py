"""Peak memory of reranking many 512-token documents: bounded by the batch, not the input size.

Each run reranks N SciFact-built documents of at least 512 tokens (every pair is cut to
max_length 512) for one query in a fresh process and reports its peak RSS; 200 and 1,000
documents should peak within a few MiB of each other, since only one batch of activations is
alive at a time.

    python -m benchmarks.memory                       # MiniLM-sized model, batch size 8
    python -m benchmarks.memory --contenders crossrank-torch,crossrank-onnx-int8 --docs 200,1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from typing import List

from benchmarks.common import add_output_argument, display_path, write_result
from benchmarks.throughput import prepare_onnx, run_contender
from benchmarks.workload import load_scifact, resolve_model


def long_documents(count: int, min_words: int = 600) -> List[str]:
    """``count`` distinct documents, each SciFact abstracts joined until ``min_words`` words.

    The corpus is reused from its start when it runs out; every document starts with its number.
    """
    _, corpus = load_scifact()
    texts = itertools.cycle(corpus.values())
    documents = []
    for number in range(count):
        words: List[str] = [f"({number})"]
        while len(words) < min_words:
            words.extend(next(texts).split())
        documents.append(" ".join(words))
    return documents


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="minilm", help="checkpoint dir, or tiny | minilm | base (default minilm)"
    )
    parser.add_argument("--docs", default="200,1000", help="document counts to compare")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contenders", default="crossrank-torch")
    add_output_argument(parser)
    args = parser.parse_args(argv)

    model = resolve_model(args.model)
    counts = [int(n) for n in args.docs.split(",")]
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    query = "Which cells does the immune system use to fight infection?"
    documents = long_documents(max(counts))
    if any(n.startswith("crossrank-onnx") for n in names):
        prepare_onnx(model, names)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for count in counts:
                path = os.path.join(tmp, f"{count}.json")
                with open(path, "w", encoding="utf-8") as handle:
                    calls = [[[query, d] for d in documents[:count]]]
                    json.dump({"calls": calls, "warmup": [[query, documents[0]]]}, handle)
                print(f"running {name} on {count} documents ...", file=sys.stderr, flush=True)
                r = run_contender(name, sys.executable, model, path, args)
                row = {"contender": name, "documents": count}
                if "error" in r:
                    rows.append({**row, "error": r["error"].splitlines()[-1][:200]})
                    continue
                rows.append(
                    {
                        **row,
                        "rss_after_load_mib": round(r["rss_after_load_mib"]),
                        "peak_rss_mib": round(r["peak_rss_mib"]),
                        "peak_minus_load_mib": round(r["peak_rss_mib"] - r["rss_after_load_mib"]),
                        "pairs_per_s": round(r["pairs_per_s"], 2),
                    }
                )
    print(table(rows))
    settings = {
        "model": display_path(model),
        "documents": counts,
        "min_words_per_document": 600,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": args.threads,
        "contenders": names,
    }
    title = "Peak memory of one compute_score call on N long documents, each in a fresh process"
    write_result("memory", title, settings, {"rows": rows}, args.output, argv=argv)


def table(rows: List[dict]) -> str:
    """The rows as Markdown."""
    lines = [
        "| contender | documents | peak RSS after load (MiB) | peak RSS (MiB) "
        "| peak − load (MiB) | pairs/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['contender']} | {r['documents']} | failed: {r['error'][-80:]} |||")
            continue
        lines.append(
            f"| {r['contender']} | {r['documents']} | {r['rss_after_load_mib']} "
            f"| {r['peak_rss_mib']} | {r['peak_minus_load_mib']} | {r['pairs_per_s']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
