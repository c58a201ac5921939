"""Fixtures for the Haystack integration: tiny cross-encoders built by the core's test helpers."""

from __future__ import annotations

import pytest

from crossrank import Reranker
from crossrank import testing as core

API_KEY = "test-key"


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory) -> str:
    """A tiny random BERT cross-encoder (1-logit head) saved like a hub checkpoint."""
    return core.save_model(tmp_path_factory.mktemp("haystack-models") / "bert", "bert")


@pytest.fixture(scope="session")
def reranker(cross_encoder_dir) -> Reranker:
    """One loaded Reranker shared by the tests, as users share one between components."""
    return Reranker(cross_encoder_dir, device="cpu", max_length=128)


@pytest.fixture(scope="session")
def server_url(reranker):
    """A real ``crossrank serve`` app (uvicorn in a thread) on a free loopback port, same model."""
    pytest.importorskip("fastapi", reason="remote tests need a crossrank server: crossrank[serve]")
    pytest.importorskip("uvicorn", reason="remote tests need a crossrank server: crossrank[serve]")
    from crossrank.serve import ServeSettings, create_app
    from crossrank.testing import serving

    with serving(create_app(reranker, ServeSettings(api_key=API_KEY)), healthy=True) as url:
        yield url
