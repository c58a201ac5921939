"""The docs' Python blocks: every one runs in scripts/test.sh (tests/docs/doc_blocks.py), except
those marked ``<!-- doc-test: skip, REASON -->``, which must need the hub or a GPU.

``python tests/docs/test_doc_blocks.py`` lists the skipped blocks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_MARK = re.compile(r"<!--\s*doc-test:\s*skip,\s*(?P<reason>.*?)\s*-->\n```(?P<lang>\w*)", re.S)
ALLOWED_REASON = re.compile(r"\bneeds\b.*\b(the hub|a GPU)\b", re.I)


def markdown_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def skipped_blocks():
    """(file, line, reason) of every block marked skip."""
    found = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        for match in SKIP_MARK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((path.relative_to(ROOT).as_posix(), line, match.group("reason")))
    return found


def test_skip_marks_sit_on_python_blocks_and_say_hub_or_gpu():
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        marks = len(re.findall(r"^<!--\s*doc-test:\s*skip", text, re.M))  # not in prose
        fenced = [m for m in SKIP_MARK.finditer(text)]
        assert marks == len(fenced), f"{path}: a skip mark is not right above a code fence"
        for match in fenced:
            assert match.group("lang") == "python", (
                f"{path}: skip mark on a {match.group('lang')} block"
            )
    for file, line, reason in skipped_blocks():
        assert ALLOWED_REASON.search(reason), f"{file}:{line}: skipped for {reason!r}, not hub/GPU"


def test_python_blocks_use_only_hub_ids_that_have_a_stand_in():
    sys.path.insert(0, str(ROOT))
    try:
        from tests.docs.doc_blocks import HUB_STAND_INS
    finally:
        sys.path.remove(str(ROOT))
    hub_id = re.compile(r"""["']([A-Za-z0-9][\w.-]*/[\w.-]+)["']""")
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            for name in hub_id.findall(block):
                if name.startswith(("/", "runs/", "examples/")) or "." in name.split("/")[0]:
                    continue
                if "/" in name and not Path(ROOT, name).exists() and not name.startswith("tmp"):
                    assert name in HUB_STAND_INS, f"{path.name}: {name!r} has no stand-in"


def test_readme_is_a_front_page_of_at_most_300_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail into docs/"


if __name__ == "__main__":
    for file, line, reason in skipped_blocks():
        print(f"{file}:{line}: {reason}")
