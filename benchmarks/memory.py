"""Peak memory of reranking many 512-token documents: bounded by the batch, not the input size.

Each run reranks N SciFact-built documents of at least 512 tokens (every pair is cut to
max_length 512) for one query in a fresh process and reports its peak RSS; 200 and 1,000
documents should peak within a few MiB of each other, since only one batch of activations is
alive at a time.

    python benchmarks/memory.py                       # MiniLM-sized model, batch size 8
    python benchmarks/memory.py --contenders crossrank-torch,crossrank-onnx-int8 --docs 200,1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from typing import List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput import _prepare_onnx, run_contender  # noqa: E402
from workload import load_scifact, minilm_cross_encoder  # noqa: E402


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
    parser.add_argument("--model", help="checkpoint dir (default: MiniLM-L6 with a random head)")
    parser.add_argument("--docs", default="200,1000", help="document counts to compare")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contenders", default="crossrank-torch")
    args = parser.parse_args(argv)

    model = os.path.abspath(args.model) if args.model else str(minilm_cross_encoder())
    counts = [int(n) for n in args.docs.split(",")]
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    query = "Which cells does the immune system use to fight infection?"
    documents = long_documents(max(counts))
    if any(n.startswith("crossrank-onnx") for n in names):
        _prepare_onnx(model, names)
    rows = [
        "| contender | documents | peak RSS after load (MiB) | peak RSS (MiB) | peak − load (MiB) | pairs/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for count in counts:
                path = os.path.join(tmp, f"{count}.json")
                with open(path, "w", encoding="utf-8") as handle:
                    calls = [[[query, d] for d in documents[:count]]]
                    json.dump({"calls": calls, "warmup": [[query, documents[0]]]}, handle)
                print(f"running {name} on {count} documents ...", file=sys.stderr, flush=True)
                r = run_contender(name, sys.executable, model, path, args)
                if "error" in r:
                    rows.append(f"| {name} | {count} | failed: {r['error'][-80:]} | | | |")
                    continue
                rows.append(
                    f"| {name} | {count} | {r['rss_after_load_mib']:.0f} | {r['peak_rss_mib']:.0f} "
                    f"| {r['peak_rss_mib'] - r['rss_after_load_mib']:.0f} | {r['pairs_per_s']:.1f} |"
                )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
