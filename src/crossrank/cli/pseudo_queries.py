"""``crossrank pseudo-queries``: a BEIR training directory of pseudo queries from a corpus alone.

.. code-block:: bash

    crossrank pseudo-queries ../shared/data/cranfield --output data/cranfield-pseudo --kind title,ict
    crossrank train data/cranfield-pseudo --model all-MiniLM-L6-v2 --output runs/minilm-cranfield

Only the corpus of DATA_DIR is read (never its queries or qrels); see :mod:`crossrank.training.pseudo_queries`.
"""

from __future__ import annotations

import argparse
import json
import sys

from .arguments import add_json_option, add_output_option

HELP = "make training data (queries + qrels) from a corpus alone, for crossrank train"
DESCRIPTION = (
    "Write a BEIR-format training directory (corpus.jsonl, queries.jsonl, "
    "qrels/train.tsv, pseudo.json) whose queries are made from DATA_DIR's documents: its title "
    "(--kind title) or a sentence taken out of it (--kind ict, inverse cloze task), the rest of "
    "the document being the positive. Only the corpus is read: DATA_DIR's queries and qrels "
    "(its test queries) never are. Then: crossrank train OUTPUT --model BASE --output RUN."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank pseudo-queries``."""
    parser.add_argument("data", help="directory with corpus.jsonl[.gz] (BEIR format)")
    add_output_option(parser, "directory to write", required=True)
    parser.add_argument(
        "--kind",
        default="title",
        help="title, ict, or title,ict (each document gives one of them; default: title)",
    )
    parser.add_argument("--max-queries", type=int, default=None, help="at most N pseudo queries")
    parser.add_argument("--seed", type=int, default=42, help="seed of every draw (default: 42)")
    parser.add_argument("--min-query-words", type=int, default=4, help="shorter queries skipped")
    parser.add_argument("--max-query-words", type=int, default=64, help="longer queries skipped")
    parser.add_argument(
        "--bm25-agreement",
        type=int,
        default=None,
        metavar="K",
        help="keep a query only if BM25 ranks its positive in the top K (default: keep all)",
    )
    parser.add_argument(
        "--mix",
        action="append",
        default=None,
        metavar="DIR[:SPLIT]",
        help="also add this labelled collection's corpus and SPLIT (default train) queries, ids "
        "prefixed '<name>:'; repeatable",
    )
    parser.add_argument(
        "--mix-max-queries",
        type=int,
        default=None,
        help="at most N queries of each --mix (sampled)",
    )
    parser.add_argument("--overwrite", action="store_true", help="delete --output's contents first")
    add_json_option(parser, "the summary")


def _table(summary: dict) -> str:
    counts = ", ".join(f"{name} {n:,}" for name, n in summary["queries"].items())
    lines = [
        f"queries: {counts} ({sum(summary['queries'].values()):,} in all)",
        f"corpus: {summary['corpus_size']:,} documents ({summary['replaced_documents']:,} replaced "
        "by their pseudo-query positive, without the query text)",
    ]
    if summary["dropped_by_agreement"]:
        dropped = ", ".join(f"{k} {n:,}" for k, n in summary["dropped_by_agreement"].items())
        lines.append(f"dropped (positive not in BM25's top {summary['agreement_top']}): {dropped}")
    if summary["skipped"]:
        skipped = ", ".join(f"{why} {n:,}" for why, n in summary["skipped"].items())
        lines.append(f"skipped documents: {skipped}")
    lines += [
        f"wrote {summary['output']} (corpus.jsonl, queries.jsonl, qrels/train.tsv, pseudo.json)",
        f"next: crossrank train {summary['output']} --model BASE --output RUN",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``crossrank pseudo-queries``: 0 written, 1 written but no query could be made."""
    from ..training.pseudo_queries import make_pseudo_dataset

    summary = make_pseudo_dataset(
        args.data,
        args.output,
        kinds=args.kind,
        max_queries=args.max_queries,
        seed=args.seed,
        mix=args.mix,
        mix_max_queries=args.mix_max_queries,
        min_query_words=args.min_query_words,
        max_query_words=args.max_query_words,
        agreement_top=args.bm25_agreement,
        overwrite=args.overwrite,
    )
    print(json.dumps(summary) if args.json else _table(summary))
    if not sum(summary["queries"].values()):
        print(
            "crossrank: no query could be made (documents without titles, or too short: see "
            "--kind and --min-query-words)",
            file=sys.stderr,
        )
        return 1
    return 0
