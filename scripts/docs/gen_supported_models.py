"""Write the supported-models page (models.md) from ``crossrank.families.support``.

Run by mkdocs-gen-files at build time (mkdocs.yml), like the CLI reference: the page is rendered
from the same table that ``tests/families/test_support_matrix.py`` checks cell by cell, so it
lists every family with its backends and claims no cell that the tests do not cover.
By hand: ``python scripts/docs/gen_supported_models.py --stdout`` prints the page's Markdown.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # the checkout's crossrank, installed or not


def main() -> None:
    from crossrank.families.support import markdown

    text = markdown()
    if "--stdout" in sys.argv:
        print(text)
        return
    import mkdocs_gen_files

    with mkdocs_gen_files.open("models.md", "w") as page:
        page.write(text)


main()
