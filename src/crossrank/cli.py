"""``crossrank`` command line: ``crossrank rank`` (and more subcommands as they land)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence, Tuple

from .reranker import DEFAULT_MODEL, ModelLoadError

PROGRESS_MIN_DOCS = 64  # a bar for inputs long enough to take a while


def read_documents(path: str) -> Tuple[List[str], List[dict]]:
    """Documents from a text file (one per line) or JSONL (a ``text`` field per line); ``-`` = stdin.

    Returns the texts and, for JSONL, the other fields of each row (ids, metadata) to echo back.
    """
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with stream:
        lines = [line.rstrip("\n") for line in stream]
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


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id or local checkpoint directory (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps")
    parser.add_argument("--dtype", default=None, help="force float32 | float16 | bfloat16")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossrank", description="Cross-encoder reranking.")
    commands = parser.add_subparsers(dest="command", required=True)
    rank = commands.add_parser(
        "rank",
        help="rerank documents for a query; prints JSON lines, best first",
        description="Rerank documents (a text file, one per line, or JSONL with a 'text' field; "
        "'-' reads stdin) for a query. Prints one JSON object per line, best first.",
    )
    rank.add_argument("file", help="documents: FILE.txt (one per line), FILE.jsonl, or -")
    rank.add_argument("--query", "-q", required=True)
    rank.add_argument("--top-k", type=int, default=None)
    rank.add_argument("--threshold", type=float, default=None, help="drop scores below this")
    rank.add_argument("--raw", action="store_true", help="raw logits instead of sigmoid scores")
    rank.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _add_model_options(rank)
    return parser


def _rank(args: argparse.Namespace) -> int:
    from .reranker import Reranker

    texts, extras = read_documents(args.file)
    reranker = Reranker(
        args.model,
        device=args.device,
        dtype=args.dtype,
        max_length=args.max_length,
        batch_size=args.batch_size,
        show_progress_bar=not args.no_progress and len(texts) >= PROGRESS_MIN_DOCS,
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``crossrank`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "rank":
            return _rank(args)
    except ModelLoadError as error:
        print(f"crossrank: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as error:
        print(f"crossrank: error: {error}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
