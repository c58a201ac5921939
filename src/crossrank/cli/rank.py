"""``crossrank rank``: rerank the documents of a file (or stdin) for one query; JSON lines out.

.. code-block:: bash

    crossrank rank docs.txt --query "what do pandas eat?" --top-k 3
    cat docs.jsonl | crossrank rank - -q "panda food" --backend openvino --quantize int8
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Tuple

from .arguments import add_no_progress_option
from .options import add_model_options, reranker_from_args

PROGRESS_MIN_DOCS = 64  # a bar for inputs long enough to take a while
EXIT_NO_DOCUMENTS = 1  # `crossrank rank` on an empty input (errors exit 2)


HELP = "rerank documents for a query; prints JSON lines, best first"
DESCRIPTION = (
    "Rerank documents (a text file, one per line, or JSONL with a 'text' field; "
    "'-' reads stdin) for a query. Prints one JSON object per line, best first. Exit status: "
    "0 ranked, 1 no documents (an empty input; nothing is loaded), 2 an error."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``crossrank rank``."""
    parser.add_argument("file", help="documents: FILE.txt (one per line), FILE.jsonl, or -")
    parser.add_argument("--query", "-q", required=True)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None, help="drop scores below this")
    parser.add_argument("--raw", action="store_true", help="raw logits instead of sigmoid scores")
    add_no_progress_option(parser)
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Rank ``args.file``'s documents for ``args.query``: 0 ranked, 1 no documents."""
    texts, extras = read_documents(args.file)
    if not texts:  # before the model loads: nothing to rank is most likely a mistake upstream
        name = "standard input" if args.file == "-" else args.file
        print(f"crossrank: {name}: no documents (empty or only blank lines)", file=sys.stderr)
        return EXIT_NO_DOCUMENTS
    reranker = reranker_from_args(
        args, show_progress_bar=not args.no_progress and len(texts) >= PROGRESS_MIN_DOCS
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


def read_documents(path: str) -> Tuple[List[str], List[dict]]:
    """Documents from a text file (one per line) or JSONL (a ``text`` field per line); ``-`` = stdin.

    Returns the texts and, for JSONL, the other fields of each row (ids, metadata) to echo back.
    Errors name the file: a closed stdin, text that is not UTF-8.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    ...     _ = f.write('{"_id": "d1", "text": "pandas eat bamboo"}\\n')
    >>> read_documents(f.name)
    (['pandas eat bamboo'], [{'_id': 'd1'}])
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
