"""Griffe extension for the API reference: show ``>>>`` examples in docstrings as code.

Docstrings carry runnable examples in doctest form (``>>> call()`` followed by its output). Outside
a Google-style ``Examples:`` section Markdown would read them as prose (``[0.5, 0.9]`` as a link),
so every run of ``>>>``/``...`` lines and the output lines after them is wrapped in a ``pycon``
fence before the docstring is rendered. Docstrings themselves are left as written.
"""

from __future__ import annotations

import re

import griffe

PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def fence_doctests(text: str) -> str:
    """``text`` with each doctest run (prompts plus their output, up to a blank line) fenced."""
    out, lines, i, in_fence = [], text.splitlines(), 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else PROMPT.match(line)
        if not match or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = match.group(1)
        block = []
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            block.append(lines[i])
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}```pycon", *block, f"{indent}```", ""]
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the doctest examples of every object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: D102
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
