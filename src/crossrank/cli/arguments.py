"""What the subcommands share besides the model options: one-line usage errors, data arguments.

The model options (``--model``, ``--device``, ``--backend``, ...) are :mod:`.options`'; this module
holds the rest that several subcommands offer alike, so a flag reads and behaves the same
everywhere, and the helpers that keep every error to one line on stderr.

>>> parser = Parser(prog="crossrank demo")
>>> add_data_argument(parser)
>>> parser.parse_args(["data/scifact"]).data
'data/scifact'
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping, NoReturn


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, pointing at ``--help``.

    argparse prints the whole usage block before the error; for ``crossrank rank`` that is nine
    lines above the one that says what is wrong. Subparsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(error: object) -> str:
    """``error``'s message on one line (its lines joined), or its type's name when it has none.

    >>> one_line(ValueError("bad value\\n  use another"))
    'bad value use another'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


def fail(message: str, status: int = 2) -> int:
    """Print ``crossrank: error: MESSAGE`` on stderr; returns ``status`` for ``main`` to exit with."""
    print(f"crossrank: error: {message}", file=sys.stderr)
    return status


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``data``: a dataset directory in BEIR format."""
    parser.add_argument("data", help="dataset directory in BEIR format")


def add_judged_data_options(parser: argparse.ArgumentParser, split: str, top_n: int) -> None:
    """The judged data a model is measured on (``eval``, ``calibrate``): DATA, ``--split``, the BM25
    candidates per query (``--top-n``) and ``--max-queries``."""
    add_data_argument(parser)
    parser.add_argument("--split", default=split, help=f"qrels split (default: {split})")
    parser.add_argument("--top-n", type=int, default=top_n, help="BM25 candidates per query")
    parser.add_argument("--max-queries", type=int, default=None, help="only the first N queries")


def add_no_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_output_option(parser: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    """``--output``/``-o``: where the subcommand writes (a file or a directory, as ``help`` says)."""
    parser.add_argument("--output", "-o", required=required, default=None, help=help)


def add_json_option(parser: argparse.ArgumentParser, what: str = "the report") -> None:
    """``--json``: print ``what`` as one JSON object instead of a table."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def require_data_directory(path: str) -> None:
    """Raise FileNotFoundError naming ``path`` unless it is a directory: before a model loads."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data directory {path!r} does not exist")


def check_model(model: str, options: Mapping[str, Any], *, devices_here: bool = True) -> None:
    """Fail now, in one line, on a model that cannot load: before a server or Ray starts.

    The options are checked as ``Reranker`` checks them and the checkpoint is opened (tokenizer
    and config, no weights). Where the model loads later, elsewhere (the server's background
    load, Ray actors), its error would otherwise come late, inside the framework's logs, or once
    per actor and retry. ``devices_here=False``: the model runs on devices this machine may lack
    (GPU actors), so ``device`` and ``dtype`` are left to be checked where it runs.
    """
    from ..loading import open_checkpoint
    from ..settings import Settings

    if not devices_here:
        options = {**options, "device": "cpu", "dtype": None}
    Settings.create(model, **options)
    open_checkpoint(model, bool(options.get("trust_remote_code", False)))
