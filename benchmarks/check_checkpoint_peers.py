"""Check that a checkpoint saved by ``crossrank train`` scores the same in three libraries.

crossrank ``Reranker``, sentence-transformers ``CrossEncoder`` and FlagEmbedding ``FlagReranker``
load the directory as is; the script prints the largest score difference between them.

    .venv-tf4/bin/python -m benchmarks.check_checkpoint_peers runs/quality/minilm-scifact

Two sets of SciFact (query, abstract) pairs:
- pairs that fit in ``max_length`` tokens: all three libraries must agree;
- all pairs, long ones included: crossrank and FlagReranker truncate the same way (query capped at
  3/4 of ``max_length``, passage cut), CrossEncoder truncates "longest first", so only the first two
  are compared there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from benchmarks.common import ROOT, add_output_argument, display_path, write_result


def scifact_pairs(data: str, count: int):
    """Each test query with its relevant abstracts, then with abstracts taken at a fixed stride."""
    from crossrank.evaluation import load_beir  # the loader needs no extra packages

    beir = load_beir(os.path.join(data, "scifact"), "test")
    doc_ids = list(beir.corpus)
    pairs = []
    for n, (query_id, judged) in enumerate(beir.qrels.items()):
        docs = list(judged) + [doc_ids[(n * 37 + k * 101) % len(doc_ids)] for k in range(4)]
        pairs += [[beir.queries[query_id], beir.doc_text(d)] for d in docs]
    return pairs[:count]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=512)
    add_output_argument(parser)
    args = parser.parse_args(argv)

    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder

    from crossrank import Reranker

    pairs = scifact_pairs(args.data, args.pairs)
    crossrank = Reranker(args.checkpoint, device="cpu", max_length=args.max_length)
    flag = FlagReranker(args.checkpoint, use_fp16=False, devices="cpu")
    cross_encoder = CrossEncoder(args.checkpoint, device="cpu", max_length=args.max_length)
    # fit: the whole pair, with its 3 special tokens, within max_length (no truncation anywhere)
    tokenizer = crossrank.tokenizer
    fits = [
        p
        for p in pairs
        if len(tokenizer(p[0], p[1])["input_ids"]) <= args.max_length
        and len(tokenizer(p[0])["input_ids"]) - 2 <= args.max_length * 3 // 4
    ]

    if not fits:
        parser.error(f"none of the {len(pairs)} pairs fits in --max-length {args.max_length}")
    ours_all = crossrank.compute_score(pairs)
    flag_all = flag.compute_score(pairs, max_length=args.max_length)
    ours_fit = crossrank.compute_score(fits)
    flag_fit = flag.compute_score(fits, max_length=args.max_length)
    ce_fit = cross_encoder.predict(fits, activation_fn=torch.nn.Identity(), batch_size=32).tolist()

    def max_diff(a, b):
        return max(abs(x - y) for x, y in zip(a, b))

    report = {
        "checkpoint": args.checkpoint,
        "max_length": args.max_length,
        "pairs_fitting": len(fits),
        "pairs_all": len(pairs),
        "score_range": [round(min(ours_all), 3), round(max(ours_all), 3)],
        "fit: crossrank vs FlagReranker": max_diff(ours_fit, flag_fit),
        "fit: crossrank vs CrossEncoder": max_diff(ours_fit, ce_fit),
        "fit: FlagReranker vs CrossEncoder": max_diff(flag_fit, ce_fit),
        "all: crossrank vs FlagReranker": max_diff(ours_all, flag_all),
    }
    print(json.dumps(report, indent=1))
    ok = all(v < 1e-4 for k, v in report.items() if k.startswith(("fit:", "all:")))
    print("OK: the three libraries give the same scores" if ok else "MISMATCH")
    settings = {
        "checkpoint": display_path(args.checkpoint),
        "max_length": args.max_length,
        "pairs_all": len(pairs),
        "pairs_fitting": len(fits),
    }
    rows = [
        {"pairs": key.split(":")[0], "compared": key.split(": ")[1], "max_abs_score_diff": value}
        for key, value in report.items()
        if key.startswith(("fit:", "all:"))
    ]
    figures = {
        "rows": rows,
        "same_scores": ok,
        "score_min": min(ours_all),
        "score_max": max(ours_all),
    }
    title = "One checkpoint scored by crossrank, FlagReranker and CrossEncoder: score differences"
    write_result("check_checkpoint_peers", title, settings, figures, args.output, argv=argv)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
