"""The ``crossrank`` command: every subcommand's parser, and the dispatch to its module's ``run``.

Each subcommand is a module of this package with ``add_arguments(parser)`` and ``run(args)``.
Building the parser imports none of torch, transformers or a web framework (``--help`` stays
fast); a subcommand imports what it needs when it runs. Every error a user can cause (a bad
option value, a missing file or data directory, a model that does not load, a missing extra)
ends the command with one line on stderr and exit status 2; ``rank`` exits 1 on an empty input.

>>> main(["--version"])  # doctest: +SKIP
crossrank 0.1.0
"""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from . import adapt, calibrate, evaluate, pseudo_queries, rank, rerank_table, serve, train
from .arguments import Parser, fail, one_line
from .rank import EXIT_NO_DOCUMENTS

# Each subcommand's module has HELP, DESCRIPTION, add_arguments(parser) and run(args); listed in
# the order `crossrank --help` shows them
SUBCOMMANDS = {
    "rank": rank,
    "eval": evaluate,
    "train": train,
    "calibrate": calibrate,
    "pseudo-queries": pseudo_queries,
    "adapt": adapt,
    "serve": serve,
    "rerank-table": rerank_table,
}


def _build_parser() -> argparse.ArgumentParser:
    """The ``crossrank`` parser with every subcommand; ``args.run`` is the chosen one's ``run``."""
    from .. import __version__

    parser = Parser(prog="crossrank", description="Cross-encoder reranking.")
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        command = subcommands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``crossrank`` command; returns the exit status.

    0 done; 1 nothing to do (``rank`` on an empty input, ``pseudo-queries`` that made no query);
    2 an error, said in one line on stderr (argparse's usage errors exit 2 as well).
    """
    args = _build_parser().parse_args(argv)
    with _one_line_warnings():
        try:
            return args.run(args)
        except (ValueError, TypeError, OSError, ImportError) as error:  # ModelLoadError: OSError
            return fail(one_line(error))
        except KeyboardInterrupt:
            print("crossrank: interrupted", file=sys.stderr)
            return 130


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as ``crossrank: warning: MESSAGE`` lines, not Python's two-line form that quotes
    crossrank's source (the user did not write it)."""
    previous = warnings.formatwarning

    def one_line_warning(message, category, filename, lineno, line=None) -> str:
        return f"crossrank: warning: {one_line(message)}\n"

    warnings.formatwarning = one_line_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


__all__ = ["EXIT_NO_DOCUMENTS", "SUBCOMMANDS", "main"]
