"""Every cell of the supported-models table (crossrank.families.support), checked.

For each family row and backend cell, on the row's tiny random checkpoint: a ``works`` cell scores
equal to the row's torch float32 scores (within the cell's tolerance and correlation), any other
cell refuses before any weights load with the backend named. The docs page is written from the
same table, so it claims nothing that is not checked here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import crossrank.loading
import crossrank.testing
from crossrank import ModelLoadError, Reranker
from crossrank.backends.registry import get_backend
from crossrank.families.support import CELLS, ROWS, FamilyRow, Tiny, markdown

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [
    ["what does a panda eat?", "The giant panda eats bamboo."],
    ["what does a panda eat?", "Paris is the capital city of France."],
    ["which bear eats bamboo", "A cat is an animal; a dog is an animal."],
    ["where is the rain?", "the rain is in the sky, the sky is blue"],
    ["python", ""],
    ["what is the capital of france", "paris is the capital city of france"],
    ["python snake", "python is a language for code"],
    ["black and white bear", "the giant panda is black and white"],
]
MAX_LENGTH = 96


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


# (row, tiny checkpoint) pairs: a row with other architectures is checked on each.
CHECKPOINTS = [(entry, tiny) for entry in ROWS for tiny in entry.checkpoints]


def _id(tiny: Tiny) -> str:
    return _slug("-".join([tiny.builder, *map(str, tiny.args)]))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny checkpoint → its directory, built on first use (read-only: exports cache beside it)."""
    root = tmp_path_factory.mktemp("support")
    built = {}

    def get(tiny: Tiny) -> str:
        if tiny not in built:
            built[tiny] = getattr(crossrank.testing, tiny.builder)(root / _id(tiny), *tiny.args)
        return built[tiny]

    return get


@pytest.fixture(scope="module")
def float32_scores(checkpoints):
    """(row title, tiny checkpoint) → its torch float32 scores of PAIRS."""
    scores = {}

    def get(entry: FamilyRow, tiny: Tiny):
        key = (entry.title, tiny)
        if key not in scores:
            reranker = Reranker(
                checkpoints(tiny), device="cpu", max_length=MAX_LENGTH, **entry.options
            )
            scores[key] = reranker.compute_score(PAIRS)
        return scores[key]

    return get


def _reranker(path, entry, cell):
    return Reranker(path, device="cpu", max_length=MAX_LENGTH, **entry.options, **cell.options)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: _slug(c.name))
@pytest.mark.parametrize(
    "entry, tiny", CHECKPOINTS, ids=[f"{_slug(e.title)[:24]}-{_id(t)}" for e, t in CHECKPOINTS]
)
def test_cell_works_or_refuses_before_loading(
    entry, tiny, cell, checkpoints, float32_scores, monkeypatch
):
    for module in entry.needs:
        pytest.importorskip(module)
    try:
        get_backend(cell.backend).require(cell.quantize)
    except ImportError as error:
        pytest.skip(str(error))
    path = checkpoints(tiny)
    if entry.status(cell) == "works":
        reranker = _reranker(path, entry, cell)
        assert reranker._family.name == entry.family  # the row's family is what is detected
        got = reranker.compute_score(PAIRS)
        expected = float32_scores(entry, tiny)
        assert all(math.isfinite(s) for s in got)
        assert max(expected) - min(expected) > 0.1  # the scores differ, so equality says something
        assert got == pytest.approx(expected, abs=cell.tolerance)
        if cell.correlation is not None:
            assert np.corrcoef(got, expected)[0, 1] >= cell.correlation
        return
    loads = []
    monkeypatch.setattr(crossrank.loading, "load_weights", lambda *a, **k: loads.append(a))
    with pytest.raises((ValueError, ModelLoadError)) as error:
        _reranker(path, entry, cell)
    assert f"backend={cell.backend!r}" in str(error.value)
    assert loads == []


def test_the_page_lists_every_row_and_cell():
    page = markdown()
    for entry in ROWS:
        assert page.count(f"| {entry.title} |") == 2  # the families table and the backends table
        for example in entry.examples:
            assert f"`{example}`" in page
    header = next(line for line in page.splitlines() if line.startswith("| family | torch"))
    assert header == "| family | " + " | ".join(c.name for c in CELLS) + " |"
    backends_table = page.split("## Backends", 1)[1]
    for entry in ROWS:
        line = next(x for x in backends_table.splitlines() if x.startswith(f"| {entry.title} |"))
        marks = [m.strip() for m in line.split("|")[-1 - len(CELLS) : -1]]
        assert marks == ["✓" if entry.status(c) == "works" else "✗" for c in CELLS]


def test_rows_cite_tests_that_exist_and_cells_that_exist():
    names = {cell.name for cell in CELLS}
    for entry in ROWS:
        assert entry.works <= names, entry.title
        assert "torch float32" in entry.works  # the path every other cell is compared with
        cited = re.findall(r"tests/[\w/]+(?:\.py)?", entry.reference)
        assert cited, f"{entry.title}: the reference names no test"
        for path in cited:
            assert (ROOT / path).exists(), path
        for tiny in entry.checkpoints:
            assert callable(getattr(crossrank.testing, tiny.builder))
