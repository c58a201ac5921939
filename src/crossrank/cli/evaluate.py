"""``crossrank eval``: BM25 vs BM25 + rerank (and their fusion) on a BEIR-format dataset.

Needs the ``eval`` extra (``pip install "crossrank[eval]"``).

.. code-block:: bash

    crossrank eval ../shared/data/scifact --model runs/minilm-scifact --fuse-weight 0.3
    crossrank eval ../shared/data/scifact --model runs/minilm-scifact --backend openvino --quantize int8
"""

from __future__ import annotations

import argparse
import json
import os

from .arguments import (
    add_json_option,
    add_judged_data_options,
    add_no_progress_option,
    add_output_option,
    require_data_directory,
)
from .options import add_model_options, reranker_from_args

HELP = "BM25 vs BM25 + rerank on a BEIR-format dataset (nDCG@10, R@10, R@100, MRR@10)"
DESCRIPTION = (
    "Retrieve BM25 top-N candidates for each judged query of a BEIR-format dataset "
    "(corpus.jsonl[.gz], queries.jsonl, qrels/SPLIT.tsv), rerank them with --model, and print "
    "a table of metrics for BM25 alone, BM25 + rerank and (with --fuse-weight) their fusion."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank eval``."""
    add_judged_data_options(parser, split="test", top_n=100)
    parser.add_argument(
        "--fuse-weight",
        type=float,
        default=None,
        help="also report W x BM25 + (1 - W) x reranker, both min-max normalized per query",
    )
    parser.add_argument("--bm25-only", action="store_true", help="no reranking, BM25 alone")
    add_output_option(parser, "write the report as JSON here")
    add_json_option(parser)
    add_no_progress_option(parser)
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate; prints the table (or JSON) and writes ``--output``. 0 done, errors raise."""
    from ..evaluation.reranking import evaluate

    require_data_directory(args.data)  # before the model loads
    reranker = None if args.bm25_only else reranker_from_args(args)
    report = evaluate(
        args.data,
        reranker,
        split=args.split,
        top_n=args.top_n,
        max_queries=args.max_queries,
        fuse_weight=args.fuse_weight,
        show_progress=not args.no_progress,
    )
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)  # -o runs/report.json
        with open(args.output, "w", encoding="utf-8") as stream:
            json.dump(report.to_dict(), stream, indent=1)
    print(json.dumps(report.to_dict()) if args.json else report.table())
    return 0
