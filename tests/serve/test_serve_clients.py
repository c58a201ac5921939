"""Real third-party clients, unmodified, against a running crossrank server.

Each must get the same order and scores as ``Reranker.rank`` on the served model. The server
requires an API key, so each client also proves it sends ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import assert_same_ranking as assert_same  # noqa: E402
from crossrank.testing import expected_ranking as expected  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

KEY = "test-key"


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=128)


@pytest.fixture(scope="module")
def server(reranker):
    with running_server(create_app(reranker, ServeSettings(api_key=KEY))) as url:
        yield url


def test_cohere_sdk_v2(server, reranker):
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=KEY, base_url=server)
    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=3)
    got = [(r.index, r.relevance_score) for r in response.results]
    assert_same(got, expected(reranker, top_k=3))
    assert response.meta.api_version.version == "2"


def test_cohere_sdk_rejects_a_wrong_key(server):
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="wrong", base_url=server)
    with pytest.raises(cohere.errors.UnauthorizedError) as caught:
        client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)
    assert "API key" in caught.value.body["message"]


async def _async_rerank(server):
    import cohere

    client = cohere.AsyncClientV2(api_key=KEY, base_url=server)
    return await client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)


def test_cohere_async_sdk(server, reranker):
    pytest.importorskip("cohere")
    import asyncio

    response = asyncio.run(_async_rerank(server))
    assert_same([(r.index, r.relevance_score) for r in response.results], expected(reranker))


def test_langchain_cohere_rerank(server, reranker):
    pytest.importorskip("langchain_cohere")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    compressor = CohereRerank(base_url=server, cohere_api_key=KEY, model="rerank-v3.5", top_n=3)
    documents = [Document(page_content=text, metadata={"n": i}) for i, text in enumerate(DOCS)]
    result = compressor.compress_documents(documents, QUERY)
    got = [(d.metadata["n"], d.metadata["relevance_score"]) for d in result]
    assert_same(got, expected(reranker, top_k=3))


def _nodes():
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=text, id_=str(i))) for i, text in enumerate(DOCS)]


def test_llama_index_cohere_rerank(server, reranker):
    pytest.importorskip("llama_index.postprocessor.cohere_rerank")
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    post = CohereRerank(top_n=3, model="rerank-v3.5", api_key=KEY, base_url=server)
    result = post.postprocess_nodes(_nodes(), query_str=QUERY)
    assert_same([(int(n.node.id_), n.score) for n in result], expected(reranker, top_k=3))


def test_llama_index_text_embeddings_inference(server, reranker):
    pytest.importorskip("llama_index.postprocessor.tei_rerank")
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    post = TextEmbeddingInference(base_url=server, top_n=3, auth_token=f"Bearer {KEY}")
    result = post.postprocess_nodes(_nodes(), query_str=QUERY)
    assert_same([(int(n.node.id_), n.score) for n in result], expected(reranker, top_k=3))


def test_llama_index_jina_rerank(server, reranker):
    pytest.importorskip("llama_index.postprocessor.jinaai_rerank")
    from llama_index.postprocessor.jinaai_rerank import JinaRerank

    # JinaRerank posts to f"{base_url}/rerank": point it at the /v1 prefix
    post = JinaRerank(base_url=f"{server}/v1", api_key=KEY, top_n=3)
    result = post.postprocess_nodes(_nodes(), query_str=QUERY)
    assert_same([(int(n.node.id_), n.score) for n in result], expected(reranker, top_k=3))
