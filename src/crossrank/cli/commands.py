"""``crossrank`` command line: ``crossrank rank``, ``eval``, ``train``, ``calibrate``, ``serve``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

from ..errors import ModelLoadError
from ..loading import DEFAULT_MODEL

PROGRESS_MIN_DOCS = 64  # a bar for inputs long enough to take a while
EXIT_NO_DOCUMENTS = 1  # `crossrank rank` on an empty input (errors exit 2)


def read_documents(path: str) -> Tuple[List[str], List[dict]]:
    """Documents from a text file (one per line) or JSONL (a ``text`` field per line); ``-`` = stdin.

    Returns the texts and, for JSONL, the other fields of each row (ids, metadata) to echo back.
    Errors name the file: a closed stdin, text that is not UTF-8.
    """
    name = "standard input" if path == "-" else path
    if path == "-" and sys.stdin is None:  # started with stdin closed (`crossrank rank - <&-`)
        raise ValueError("documents: standard input is closed; pipe documents in or pass a file")
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    try:
        with stream:
            lines = [line.rstrip("\n") for line in stream]
    except UnicodeDecodeError as error:
        where = "" if path == "-" else f"line {_first_non_utf8_line(path)}: "
        raise ValueError(
            f"{name}: not UTF-8 text ({where}byte 0x{error.object[error.start]:02x}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None
    lines = [line for line in lines if line.strip()]
    is_jsonl = path.endswith((".jsonl", ".ndjson")) or (
        bool(lines) and lines[0].lstrip().startswith("{")
    )
    if not is_jsonl:
        return lines, [{} for _ in lines]
    texts, extras = [], []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"{path}: line {number} needs a string field 'text'")
        texts.append(row["text"])
        extras.append({k: v for k, v in row.items() if k != "text"})
    return texts, extras


def _first_non_utf8_line(path: str) -> int:
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id or local checkpoint directory (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps")
    parser.add_argument("--dtype", default=None, help="force float32 | float16 | bfloat16")
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per (query, passage) pair (default: the length the checkpoint was trained at "
        "by crossrank train, else 512)",
    )
    parser.add_argument("--batch-size", type=int, default=32)


def _build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="crossrank", description="Cross-encoder reranking.")
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    rank = commands.add_parser(
        "rank",
        help="rerank documents for a query; prints JSON lines, best first",
        description="Rerank documents (a text file, one per line, or JSONL with a 'text' field; "
        "'-' reads stdin) for a query. Prints one JSON object per line, best first. Exit status: "
        "0 ranked, 1 no documents (an empty input; nothing is loaded), 2 an error.",
    )
    rank.add_argument("file", help="documents: FILE.txt (one per line), FILE.jsonl, or -")
    rank.add_argument("--query", "-q", required=True)
    rank.add_argument("--top-k", type=int, default=None)
    rank.add_argument("--threshold", type=float, default=None, help="drop scores below this")
    rank.add_argument("--raw", action="store_true", help="raw logits instead of sigmoid scores")
    rank.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    rank.add_argument(
        "--long-documents",
        choices=("truncate", "maxp"),
        default="truncate",
        help="truncate long passages (default) or score overlapping windows and keep the best",
    )
    rank.add_argument("--stride", type=int, default=128, help="maxp: tokens windows share")
    rank.add_argument("--instruction", default=None, help="decoder LLM rerankers: the task text")
    rank.add_argument("--backend", choices=("torch", "onnx", "openvino"), default="torch")
    rank.add_argument(
        "--quantize", choices=("int8",), default=None, help="with --backend openvino or onnx"
    )
    _add_model_options(rank)
    _add_eval_parser(commands)
    _add_train_parser(commands)
    from . import calibrate as calibrate_cli

    calibrate_cli.add_parser(commands)
    from . import pseudo_queries as pseudo_cli

    pseudo_cli.add_parser(commands)
    from .serve import add_parser as add_serve_parser  # imports no web framework

    add_serve_parser(commands)
    from .rerank_table import add_parser as add_rerank_table_parser  # imports no Ray

    add_rerank_table_parser(commands)
    return parser


def _add_eval_parser(commands) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="BM25 vs BM25 + rerank on a BEIR-format dataset (nDCG@10, R@10, R@100, MRR@10)",
        description="Retrieve BM25 top-N candidates for each judged query of a BEIR-format dataset "
        "(corpus.jsonl[.gz], queries.jsonl, qrels/SPLIT.tsv), rerank them with --model, and print "
        "a table of metrics for BM25 alone, BM25 + rerank and (with --fuse-weight) their fusion.",
    )
    evaluate.add_argument("data", help="dataset directory in BEIR format")
    evaluate.add_argument("--split", default="test", help="qrels split (default: test)")
    evaluate.add_argument("--top-n", type=int, default=100, help="BM25 candidates per query")
    evaluate.add_argument("--max-queries", type=int, default=None, help="only the first N queries")
    evaluate.add_argument(
        "--fuse-weight",
        type=float,
        default=None,
        help="also report W x BM25 + (1 - W) x reranker, both min-max normalized per query",
    )
    evaluate.add_argument("--bm25-only", action="store_true", help="no reranking, BM25 alone")
    evaluate.add_argument("--output", "-o", default=None, help="write the report as JSON here")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of the table")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(evaluate)


def _add_train_parser(commands) -> None:
    from ..training.config import (  # no torch: --help stays fast
        CLOCKS,
        DISTILL_LOSSES,
        KEEPS,
        LOSSES,
        SELECT_METRICS,
        TrainConfig,
    )

    defaults = TrainConfig("", "", "")
    train = commands.add_parser(
        "train",
        help="fine-tune an encoder into a cross-encoder on BEIR-format train qrels",
        description="Fine-tune --model (any Hugging Face encoder or cross-encoder) into a 1-logit "
        "cross-encoder on a BEIR-format dataset's train qrels, with BM25 hard negatives, and save "
        "it (model + tokenizer + training_log.json) to --output.",
    )
    train.add_argument("data", help="dataset directory in BEIR format")
    train.add_argument("--model", required=True, help="base model: hub id or local directory")
    train.add_argument("--output", "-o", required=True, help="directory to save the checkpoint")
    train.add_argument("--split", default=defaults.split)
    train.add_argument("--loss", choices=LOSSES, default=defaults.loss)
    train.add_argument("--negatives", type=int, default=defaults.negatives, help="per positive")
    train.add_argument(
        "--negatives-depth", type=int, default=defaults.negatives_depth, help="BM25 depth to mine"
    )
    train.add_argument("--max-length", type=int, default=defaults.max_length)
    train.add_argument(
        "--queries-per-step", type=int, default=defaults.queries_per_step, help="batch size"
    )
    train.add_argument("--epochs", type=float, default=defaults.epochs)
    train.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    train.add_argument("--lr", type=float, default=defaults.learning_rate)
    train.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio)
    train.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--eval-queries", type=int, default=defaults.eval_queries, help="held-out train queries"
    )
    train.add_argument(
        "--eval-split",
        default=None,
        help="take the held-out queries from this split (e.g. dev); none is held out of SPLIT",
    )
    train.add_argument("--eval-every", type=int, default=defaults.eval_every, help="steps")
    train.add_argument("--eval-top-n", type=int, default=defaults.eval_top_n)
    train.add_argument(
        "--time-budget-minutes", type=float, default=None, help="stop when this budget is spent"
    )
    train.add_argument(
        "--budget-clock",
        choices=CLOCKS,
        default=defaults.budget_clock,
        help="wall: wall-clock time; cpu: CPU time / torch threads (fair on a shared machine)",
    )
    train.add_argument(
        "--device",
        default=defaults.device,
        help="auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:N or mps",
    )
    train.add_argument(
        "--freeze-layers",
        type=int,
        default=defaults.freeze_layers,
        metavar="N",
        help="freeze the embeddings and the lowest N layers: cheaper steps (default 0: none)",
    )
    train.add_argument(
        "--dropout",
        type=float,
        default=defaults.dropout,
        metavar="P",
        help="every dropout of the model set to P while training; 0 = off, 20-30%% cheaper steps "
        "on a CPU (default: the model's own, 0.1 for BERT-likes)",
    )
    train.add_argument(
        "--bf16",
        action="store_true",
        help="mixed precision: bfloat16 autocast, float32 weights; steps about half the cost on a "
        "CPU with AVX512-BF16/AMX (and on recent GPUs), slower on other CPUs",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--save-every", type=int, default=0, help="checkpoint every N steps (default: never)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from --output's last checkpoint"
    )
    train.add_argument(
        "--overwrite", action="store_true", help="delete what --output holds before training"
    )
    train.add_argument(
        "--teacher",
        default=None,
        metavar="MODEL",
        help="distill from this reranker's raw scores (any model crossrank loads), or 'bm25': "
        "the collection's BM25, standardized per group (a local folder named bm25: ./bm25)",
    )
    train.add_argument("--distill-loss", choices=DISTILL_LOSSES, default=defaults.distill_loss)
    train.add_argument(
        "--distill-weight",
        type=float,
        default=defaults.distill_weight,
        metavar="W",
        help="loss = (1 - W) x label loss + W x distillation loss (default 1: teacher only)",
    )
    train.add_argument(
        "--distill-temperature",
        type=float,
        default=defaults.distill_temperature,
        metavar="T",
        help="kl: softmax temperature of both sides (default 1)",
    )
    train.add_argument(
        "--keep",
        choices=KEEPS,
        default=defaults.keep,
        help="save the weights of the best held-out evaluation (default) or the last step's",
    )
    train.add_argument(
        "--select-metric",
        choices=SELECT_METRICS,
        default=defaults.select_metric,
        help="held-out nDCG@10 that picks the best: the model alone (default) or fused with BM25",
    )
    train.add_argument(
        "--early-stopping-patience",
        type=int,
        default=None,
        metavar="N",
        help="stop after N held-out evaluations without improvement (default: never)",
    )
    train.add_argument(
        "--early-stopping-min-delta",
        type=float,
        default=defaults.early_stopping_min_delta,
        metavar="D",
        help="an improvement must exceed this (default 0)",
    )


def _reranker(args: argparse.Namespace, **options):
    """The Reranker the shared model options (--model, --device, --dtype, ...) describe."""
    from ..reranker import Reranker

    return Reranker(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
        **options,
    )


def _rank(args: argparse.Namespace) -> int:
    texts, extras = read_documents(args.file)
    if not texts:  # before the model loads: nothing to rank is most likely a mistake upstream
        name = "standard input" if args.file == "-" else args.file
        print(f"crossrank: {name}: no documents (empty or only blank lines)", file=sys.stderr)
        return EXIT_NO_DOCUMENTS
    reranker = _reranker(
        args,
        show_progress_bar=not args.no_progress and len(texts) >= PROGRESS_MIN_DOCS,
        long_documents=args.long_documents,
        stride=args.stride,
        instruction=args.instruction,
        backend=args.backend,
        quantize=args.quantize,
    )
    hits = reranker.rank(
        args.query, texts, top_k=args.top_k, threshold=args.threshold, normalize=not args.raw
    )
    for position, hit in enumerate(hits, 1):
        row = {"rank": position, "index": hit.index, "score": round(hit.score, 6)}
        row.update(extras[hit.index])
        row["text"] = hit.text
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..evaluation.reranking import evaluate

    reranker = None
    if not args.bm25_only:
        reranker = _reranker(args)
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


def _train(args: argparse.Namespace) -> int:
    from ..training.loop import TrainConfig, train

    config = TrainConfig(
        model=args.model,
        data_dir=args.data,
        output_dir=args.output,
        split=args.split,
        loss=args.loss,
        negatives=args.negatives,
        negatives_depth=args.negatives_depth,
        max_length=args.max_length,
        queries_per_step=args.queries_per_step,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        seed=args.seed,
        eval_queries=args.eval_queries,
        eval_split=args.eval_split,
        eval_every=args.eval_every,
        eval_top_n=args.eval_top_n,
        time_budget_minutes=args.time_budget_minutes,
        budget_clock=args.budget_clock,
        device=args.device,
        freeze_layers=args.freeze_layers,
        dropout=args.dropout,
        bf16=args.bf16,
        show_progress=not args.no_progress,
        save_every=args.save_every,
        resume=args.resume,
        overwrite=args.overwrite,
        teacher=args.teacher,
        distill_loss=args.distill_loss,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        keep=args.keep,
        select_metric=args.select_metric,
        early_stopping_patience=args.early_stopping_patience,
        early_stopping_min_delta=args.early_stopping_min_delta,
    )
    result = train(config)
    summary = {
        "output": result.output_dir,
        "steps": result.steps,
        "minutes": round(result.seconds / 60, 2),
        "cpu_minutes": round(result.cpu_seconds / 60, 2),
        "stopped_by": result.stopped_by,
        "held_out_nDCG@10": result.evals[-1] if result.evals else None,
        "best": result.best,
        "kept_step": result.kept_step,
    }
    if result.resumed_from:
        summary["resumed_from"] = result.resumed_from
    print(json.dumps(summary))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``crossrank`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "rank":
            return _rank(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "train":
            return _train(args)
        if args.command == "calibrate":
            from . import calibrate as calibrate_cli

            return calibrate_cli.run(args)
        if args.command == "pseudo-queries":
            from . import pseudo_queries as pseudo_cli

            return pseudo_cli.run(args)
        if args.command == "serve":
            from .serve import run as run_serve

            return run_serve(args)
        if args.command == "rerank-table":
            from .rerank_table import run as run_rerank_table

            return run_rerank_table(args)
    except ModelLoadError as error:
        print(f"crossrank: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"crossrank: error: {error}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
