"""Write the CLI reference page (cli.md) from the argparse parsers of ``crossrank.cli``.

Run by mkdocs-gen-files at build time (mkdocs.yml), so the page always matches the code: every
subcommand, every option, its default and help as argparse knows them. The parser builder is
looked up rather than imported by name, so a rename inside ``crossrank.cli`` does not break the
docs build: any zero-argument function of a ``crossrank.cli`` module whose name mentions "parser"
and that returns the ``crossrank`` parser (one with subcommands) is used.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's crossrank, installed or not


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def find_parser() -> argparse.ArgumentParser:
    """The ``crossrank`` command's parser, from whichever ``crossrank.cli`` function builds it."""
    import crossrank.cli as cli

    names = ["crossrank.cli"] + [
        f"crossrank.cli.{info.name}"
        for info in pkgutil.iter_modules(cli.__path__)
        if not info.name.startswith("__")  # __main__ would run the command
    ]
    for name in names:
        module = importlib.import_module(name)
        for attr, function in sorted(vars(module).items()):
            if "parser" not in attr.lower() or not inspect.isfunction(function):
                continue
            if function.__module__ != module.__name__:
                continue
            if any(
                p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                for p in inspect.signature(function).parameters.values()
            ):
                continue
            parser = function()
            if isinstance(parser, argparse.ArgumentParser) and _subcommands(parser):
                return parser
    raise RuntimeError("no function in crossrank.cli builds the crossrank parser")


def _option_row(action: argparse.Action) -> str:
    if action.option_strings:
        name = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (
                "{" + ",".join(map(str, action.choices)) + "}"
                if action.choices
                else action.dest.upper()
            )
            name += f" `{metavar}`"
    else:
        name = f"`{action.metavar or action.dest}`"
    help_text = (action.help or "").replace("|", "\\|").replace("\n", " ")
    if action.help == argparse.SUPPRESS:
        return ""
    if "%(" in help_text:
        try:
            help_text = help_text % {**vars(action), "prog": "crossrank"}
        except (KeyError, TypeError, ValueError):
            pass
    default = action.default
    shown = (
        f"`{default!r}`"
        if action.option_strings
        and default not in (None, False, argparse.SUPPRESS)
        and action.nargs != 0
        else ""
    )
    required = "yes" if action.required else ""
    return f"| {name} | {help_text} | {shown} | {required} |"


def render(parser: argparse.ArgumentParser) -> str:
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the `crossrank` command's own argparse parsers, so it "
        "lists every subcommand and option of the installed version. `crossrank SUBCOMMAND "
        "--help` prints the same.",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
    ]
    for name, sub in _subcommands(parser).items():
        lines += [f"## `crossrank {name}`", ""]
        if sub.description:
            lines += [sub.description.strip(), ""]
        lines += ["```text", sub.format_usage().strip(), "```", ""]
        lines += ["| argument | help | default | required |", "| --- | --- | --- | --- |"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            row = _option_row(action)
            if row:
                lines.append(row)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines at the terminal width
    text = render(find_parser())
    if "--stdout" in sys.argv:  # by hand: python scripts/docs/gen_cli_reference.py --stdout
        print(text)
        return
    import mkdocs_gen_files

    with mkdocs_gen_files.open("cli.md", "w") as page:
        page.write(text)


main()
