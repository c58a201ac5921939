"""The model options every subcommand that loads a model offers, generated from the settings table.

:func:`add_model_options` adds one flag per option that :func:`crossrank.settings.model_options`
gives a flag (``--model``, ``--device``, ``--dtype``, ``--max-length``, ``--batch-size``,
``--backend``, ``--quantize``, ``--compile``, ...), with the table's default, help and choices;
:func:`reranker_options` reads them back as ``Reranker`` keyword arguments and
:func:`reranker_from_args` builds the ``Reranker``. So ``rank``, ``eval``, ``calibrate``, ``serve``
and ``rerank-table`` take the same model options, and a new setting reaches all of them at once.
Importing this module imports no torch (``crossrank --help`` stays fast).

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_model_options(parser)
>>> args = parser.parse_args(["--model", "path/to/model", "--backend", "onnx"])
>>> reranker_options(args)["backend"], args.model
('onnx', 'path/to/model')
>>> reranker = reranker_from_args(args, show_progress_bar=True)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable, Tuple

from ..settings import ModelOption, model_options

TITLE = "model (as crossrank.Reranker)"


def flagged_options() -> Tuple[ModelOption, ...]:
    """The model options that have a command-line flag, in ``Reranker``'s keyword order."""
    return tuple(option for option in model_options() if option.flag)


def add_model_options(
    parser: argparse.ArgumentParser, *, exclude: Iterable[str] = (), title: str = TITLE
) -> None:
    """Add every flagged model option to ``parser``, in an argument group called ``title``.

    ``exclude`` names options (by setting name, e.g. ``"model"``) a subcommand defines itself.
    Each flag's ``dest`` is the setting's name (``--max-length`` → ``args.max_length``); an
    on/off setting (``--compile``) is a ``store_true`` flag.
    """
    left_out = set(exclude)
    unknown = left_out - {option.name for option in flagged_options()}
    if unknown:
        raise ValueError(f"exclude names no flagged model option: {sorted(unknown)}")
    group = parser.add_argument_group(title)
    for option in flagged_options():
        if option.name in left_out:
            continue
        if isinstance(option.default, bool):
            group.add_argument(
                option.flag,
                dest=option.name,
                action="store_true",
                default=option.default,
                help=option.help,
            )
            continue
        group.add_argument(
            option.flag,
            dest=option.name,
            type=option.value_type or str,
            default=option.default,
            choices=option.choices,
            help=option.help,
        )


def reranker_options(args: argparse.Namespace, **overrides: Any) -> Dict[str, Any]:
    """The ``Reranker`` keyword arguments the parsed model flags describe (``model`` left out),
    updated with ``overrides``.

    An option the parser does not define (an ``exclude``-d one) is left out, so it takes the
    table's default. Use it where the options travel (to Ray actors, a server's loader).
    """
    options = {
        option.name: getattr(args, option.name)
        for option in flagged_options()
        if option.name != "model" and hasattr(args, option.name)
    }
    options.update(overrides)
    return options


def reranker_from_args(args: argparse.Namespace, **overrides: Any):
    """The :class:`~crossrank.Reranker` that ``args``' model flags describe.

    ``overrides`` are further ``Reranker`` keyword arguments (``show_progress_bar=...``) and win
    over the flags.
    """
    from ..reranker import Reranker  # torch: only when a model loads

    options = reranker_options(args, **overrides)
    return Reranker(options.pop("model", args.model), **options)


__all__ = ["add_model_options", "flagged_options", "reranker_from_args", "reranker_options"]
