"""pytest plugin that runs every Python block of README.md and docs/ (pytest-markdown-docs).

    python -m pytest -p tests.docs.doc_blocks --markdown-docs README.md docs

Run from the repository root (blocks open ``examples/pandas.txt``). The blocks are written as a
user writes them, with hub ids such as ``"BAAI/bge-reranker-base"``; here each hub id a block
uses resolves, fully offline, to a tiny random checkpoint of the same architecture placed in a
temporary Hugging Face cache (``HUB_STAND_INS``), so the blocks run the real code paths without
the hub and check that the code runs, not what the scores are.

A block that cannot run here is marked in the Markdown, right above its fence, with
``<!-- doc-test: skip, REASON -->`` (invisible on GitHub and on the site); REASON must say it
needs the hub or a GPU (``tests/docs/test_doc_blocks.py`` checks that and lists them).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

SKIP_MARK = re.compile(r"<!--\s*doc-test:\s*skip,\s*(?P<reason>.*?)\s*-->", re.S)

# hub id -> ("encoder" | "decoder", tiny kind from crossrank.testing)
HUB_STAND_INS = {
    "BAAI/bge-reranker-base": ("encoder", "xlm-roberta"),
    "BAAI/bge-reranker-v2-m3": ("encoder", "xlm-roberta"),
    "cross-encoder/ms-marco-MiniLM-L-6-v2": ("encoder", "bert"),
    "Qwen/Qwen3-Reranker-0.6B": ("decoder", "qwen3"),
    "BAAI/bge-reranker-v2-gemma": ("decoder", "gemma"),
}
SNAPSHOT = "0" * 40


def _build_hub_cache(cache: Path) -> None:
    from crossrank.testing import save_decoder, save_model

    for hub_id, (family, kind) in HUB_STAND_INS.items():
        repo = cache / ("models--" + hub_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(SNAPSHOT)
        target = repo / "snapshots" / SNAPSHOT
        (save_model if family == "encoder" else save_decoder)(target, kind)


def pytest_configure(config: pytest.Config) -> None:
    # Before anything imports huggingface_hub, which reads these once at import.
    root = Path(tempfile.mkdtemp(prefix="crossrank-doc-blocks-"))
    os.environ["HF_HUB_CACHE"] = str(root / "hub")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["CROSSRANK_CACHE"] = str(root / "crossrank-cache")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _build_hub_cache(root / "hub")


@pytest.hookimpl(tryfirst=True)
def pytest_markdown_docs_markdown_it():
    """The plugin's parser, with fences under a skip mark turned into ``notest`` fences."""
    from markdown_it import MarkdownIt

    class SkipMarks(MarkdownIt):
        def parse(self, src, env=None):
            tokens = super().parse(src, env)
            for before, token in zip(tokens, tokens[1:]):
                if (
                    token.type == "fence"
                    and before.type == "html_block"
                    and SKIP_MARK.search(before.content)
                ):
                    token.info += " notest"
            return tokens

    return SkipMarks("commonmark")
