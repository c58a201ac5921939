"""``crossrank adapt``: a reranker for a corpus nobody labelled, in one command.

.. code-block:: bash

    crossrank adapt ../shared/data/cranfield --model sentence-transformers/all-MiniLM-L6-v2 \\
        --output runs/cranfield-adapted

Pseudo queries from the corpus, then training with BM25 as the teacher, within a CPU-time budget;
see :mod:`crossrank.training.adaptation`. The collection's queries and qrels are read only with
``--evaluate SPLIT``, after training, to measure the result.
"""

from __future__ import annotations

import argparse
import json

from .arguments import add_json_option, add_no_progress_option, add_output_option

HELP = "adapt a reranker to a corpus without labels (pseudo queries + training, one command)"
DESCRIPTION = (
    "Make pseudo queries from DATA_DIR's corpus (titles and sentences taken out of documents), "
    "then fine-tune --model on them with BM25 as the teacher, within --budget-minutes of CPU "
    "time. Writes OUTPUT/pseudo, OUTPUT/model (the reranker) and OUTPUT/adapt.json. DATA_DIR's "
    "queries and qrels are never read, unless --evaluate SPLIT asks to measure the result on them."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank adapt``."""
    from ..training import adaptation as adapt  # no torch: --help stays fast

    parser.add_argument(
        "data", metavar="DATA_DIR", help="directory with corpus.jsonl[.gz] (BEIR format)"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="base model: an encoder or cross-encoder, hub id or directory",
    )
    add_output_option(parser, "directory for the run (pseudo/, model/, adapt.json)", required=True)
    parser.add_argument("--seed", type=int, default=42, help="seed of the draws and the training")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=adapt.BUDGET_MINUTES,
        help="CPU time for the whole route, CPU time / torch threads "
        f"(default: {adapt.BUDGET_MINUTES:g})",
    )
    parser.add_argument(
        "--kind",
        default=",".join(adapt.KINDS),
        help=f"pseudo-query kinds (default: {','.join(adapt.KINDS)}; see crossrank pseudo-queries)",
    )
    parser.add_argument(
        "--bm25-agreement",
        type=int,
        default=adapt.AGREEMENT_TOP,
        metavar="K",
        help="keep a pseudo query only if BM25 ranks its positive in the top K; 0 keeps all "
        f"(default: {adapt.AGREEMENT_TOP})",
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=adapt.RECIPE["epochs"],
        help="passes over the pseudo queries; the budget ends a large corpus's run earlier, its "
        f"learning rate decayed all the same (default: {adapt.RECIPE['epochs']:g})",
    )
    parser.add_argument(
        "--mix",
        action="append",
        default=None,
        metavar="DIR[:SPLIT]",
        help="a labelled BEIR collection whose SPLIT (default train) queries join the pseudo "
        "queries (repeatable; never DATA_DIR itself)",
    )
    parser.add_argument(
        "--device", default=None, help="where to train: auto (default), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast: about twice the steps on CPUs with AVX512-BF16/AMX, slower on others",
    )
    parser.add_argument(
        "--evaluate",
        default=None,
        metavar="SPLIT",
        help="after training, measure on DATA_DIR's SPLIT queries and qrels (BM25, alone, fused)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the run --output holds")
    add_json_option(parser, "the summary")
    add_no_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    """Adapt; prints the summary (a table, or JSON) also saved as OUTPUT/adapt.json."""
    from ..training.adaptation import adapt

    overrides = {"epochs": args.epochs}
    if args.device is not None:
        overrides["device"] = args.device
    if args.bf16:
        overrides["bf16"] = True
    result = adapt(
        args.data,
        args.model,
        args.output,
        seed=args.seed,
        budget_minutes=args.budget_minutes,
        kinds=args.kind,
        agreement_top=args.bm25_agreement or None,
        mix=args.mix,
        evaluate_split=args.evaluate,
        overrides=overrides,
        show_progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print(json.dumps(result.to_dict()) if args.json else result.table())
    return 0
