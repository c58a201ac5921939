"""The TEI route's ``truncate`` and TEI-shaped errors, over real HTTP.

``truncate: false``: a pair the served max_length would cut is a 422 with TEI's ``error`` and
``error_type`` and the token counts; ``true`` or left out (TEI's ``--auto-truncate`` default): cut
to fit, scored as ``Reranker.rank`` scores. Every error of ``/rerank`` carries TEI's keys beside
crossrank's ``message`` and ``detail``; the Cohere/Jina routes keep their shape.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import assert_same_ranking as assert_same  # noqa: E402
from crossrank.testing import expected_ranking as expected  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

MAX_LENGTH = 128
LONG = "the giant panda eats bamboo " * 60  # ~300 tokens: over max_length with any query


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def server(reranker):
    with running_server(create_app(reranker, ServeSettings(max_documents=20))) as url:
        yield url


def pair_tokens(reranker, query, text):
    """The untruncated (query, text) input, special tokens included: what TEI counts."""
    return len(reranker.tokenizer(query, text)["input_ids"])


def scores_of(response):
    return [(r["index"], r["score"]) for r in response.json()]


def assert_tei_error(response, status, error_type):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_type"] == error_type
    assert body["error"] == body["message"]  # TEI's key and crossrank's say the same
    assert body["detail"]
    return body


def test_truncate_false_refuses_a_long_text_with_the_token_counts(server, reranker):
    texts = DOCS[:2] + [LONG] + DOCS[2:] + [LONG + " more"]
    response = post(f"{server}/rerank", {"query": QUERY, "texts": texts, "truncate": False})
    body = assert_tei_error(response, 422, "Validation")
    given = pair_tokens(reranker, QUERY, LONG)
    assert given > MAX_LENGTH
    assert body["error"].startswith(
        f"Input validation error: `inputs` must have less than {MAX_LENGTH} tokens. Given: {given} "
    )
    assert "texts[2]" in body["error"] and "2 of the texts" in body["error"]
    assert '"truncate": true' in body["error"]


def test_truncate_false_accepts_a_pair_of_exactly_max_length(server, reranker):
    # "bamboo" is one token: the pair is [CLS] query [SEP] n x bamboo [SEP]
    room = MAX_LENGTH - pair_tokens(reranker, QUERY, "bamboo") + 1
    fits, over = "bamboo " * room, "bamboo " * (room + 1)
    assert pair_tokens(reranker, QUERY, fits) == MAX_LENGTH
    body = {"query": QUERY, "texts": DOCS + [fits], "truncate": False}
    response = post(f"{server}/rerank", body)
    assert response.status_code == 200, response.text
    assert_same(scores_of(response), expected(reranker, docs=DOCS + [fits]))
    refused = post(f"{server}/rerank", dict(body, texts=[over]))
    error = assert_tei_error(refused, 422, "Validation")["error"]
    assert f"less than {MAX_LENGTH} tokens. Given: {MAX_LENGTH + 1} (texts[0]" in error


def test_truncate_true_and_the_default_cut_to_fit_like_rank(server, reranker):
    texts = DOCS + [LONG]
    want = expected(reranker, docs=texts)  # rank cuts the long pair to max_length
    for extra in ({"truncate": True}, {}):
        response = post(f"{server}/rerank", {"query": QUERY, "texts": texts, **extra})
        assert response.status_code == 200, (extra, response.text)
        assert_same(scores_of(response), want)
    raw = post(
        f"{server}/rerank", {"query": QUERY, "texts": texts, "truncate": True, "raw_scores": True}
    )
    assert_same(scores_of(raw), expected(reranker, docs=texts, normalize=False))


def test_truncate_false_on_texts_that_fit_scores_like_rank(server, reranker):
    response = post(f"{server}/rerank", {"query": QUERY, "texts": DOCS, "truncate": False})
    assert response.status_code == 200
    assert_same(scores_of(response), expected(reranker))


def test_truncate_false_refuses_a_query_over_query_max_length(server, reranker):
    query = "what is panda " * 40  # 120 tokens alone: over the 96-token query cap
    query_cap = reranker.info()["query_max_length"]
    tokens = len(reranker.tokenizer(query, add_special_tokens=False)["input_ids"])
    assert tokens > query_cap
    response = post(f"{server}/rerank", {"query": query, "texts": ["hi"], "truncate": False})
    error = assert_tei_error(response, 422, "Validation")["error"]
    assert f"`query` must have less than {query_cap} tokens. Given: {tokens}" in error
    assert post(f"{server}/rerank", {"query": query, "texts": ["hi"]}).status_code == 200


def test_llama_index_tei_client_sends_no_truncate_and_gets_long_texts_scored(server, reranker):
    pytest.importorskip("llama_index.postprocessor.tei_rerank")
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    texts = DOCS + [LONG]
    nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(texts)]
    result = TextEmbeddingInference(base_url=server, top_n=3).postprocess_nodes(
        nodes, query_str=QUERY
    )
    assert_same(
        [(int(n.node.id_), n.score) for n in result], expected(reranker, docs=texts, top_k=3)
    )


def test_long_documents_maxp_cuts_nothing_so_truncate_false_scores(bert_dir):
    windowed = Reranker(bert_dir, device="cpu", max_length=MAX_LENGTH, long_documents="maxp")
    with running_server(create_app(windowed, ServeSettings())) as url:
        texts = DOCS + [LONG]
        response = post(f"{url}/rerank", {"query": QUERY, "texts": texts, "truncate": False})
        assert response.status_code == 200, response.text
        assert_same(scores_of(response), expected(windowed, docs=texts))


@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": QUERY}, "texts"),
        ({"query": QUERY, "texts": DOCS, "truncate": "no"}, "truncate"),
        ({"query": " ", "texts": DOCS}, "query"),
        ({"query": QUERY, "texts": ["a", 7]}, "texts[1]"),
    ],
)
def test_validation_errors_carry_tei_keys(server, body, field):
    body = assert_tei_error(post(f"{server}/rerank", body), 422, "Validation")
    assert field in body["error"]


def test_other_errors_of_the_tei_route_carry_tei_keys(server, reranker):
    too_many = post(f"{server}/rerank", {"query": QUERY, "texts": ["d"] * 21})
    assert "texts" in assert_tei_error(too_many, 413, "Validation")["error"]
    with running_server(
        create_app(reranker, ServeSettings(api_key="k", max_body_bytes=2000))
    ) as url:
        body = {"query": QUERY, "texts": DOCS}
        denied = post(f"{url}/rerank", body)
        assert "API key" in assert_tei_error(denied, 401, "Unauthorized")["error"]
        auth = {"Authorization": "Bearer k"}
        big = post(f"{url}/rerank", {"query": QUERY, "texts": [LONG] * 3}, headers=auth)
        assert "max_body_bytes" in assert_tei_error(big, 413, "Validation")["error"]
        assert post(f"{url}/rerank", body, headers=auth).status_code == 200


def test_cohere_routes_keep_their_error_shape(server):
    response = post(f"{server}/v1/rerank", {"query": QUERY})
    assert response.status_code == 422
    assert set(response.json()) == {"message", "detail"}
    unknown = post(f"{server}/v2/rerank", {"query": QUERY, "documents": DOCS, "truncate": False})
    assert unknown.status_code == 200  # not a Cohere field: ignored there, as any unknown field


def test_truncate_false_on_a_reranker_that_cannot_count_is_a_clear_422(reranker):
    class Bare:  # anything with score_many can be served, but it cannot count tokens
        model_name, max_length = reranker.model_name, reranker.max_length

        def score_many(self, *args, **kwargs):
            return reranker.score_many(*args, **kwargs)

    with running_server(create_app(Bare(), ServeSettings())) as url:
        body = {"query": QUERY, "texts": DOCS, "truncate": False}
        error = assert_tei_error(post(f"{url}/rerank", body), 422, "Validation")["error"]
        assert "truncate" in error and "cannot count tokens" in error
        assert post(f"{url}/rerank", dict(body, truncate=True)).status_code == 200


def test_a_calibrated_model_serves_calibrated_scores_and_raw_logits(bert_dir, tmp_path):
    from crossrank.calibration import Calibration

    platt = Calibration("platt", a=0.5, b=-1.0, source="test")
    path = tmp_path / "calibration.json"
    platt.save(path)
    calibrated = Reranker(bert_dir, device="cpu", max_length=MAX_LENGTH, calibration=path)
    logits = calibrated.compute_score([[QUERY, d] for d in DOCS])
    with running_server(create_app(calibrated, ServeSettings())) as url:
        cohere = post(f"{url}/v1/rerank", {"query": QUERY, "documents": DOCS}).json()["results"]
        raw = post(f"{url}/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
    probabilities = platt.probabilities(logits)
    for item in cohere:
        assert item["relevance_score"] == pytest.approx(probabilities[item["index"]], abs=1e-5)
    for item in raw:
        assert item["score"] == pytest.approx(logits[item["index"]], abs=1e-5)
    assert_same([(r["index"], r["relevance_score"]) for r in cohere], expected(calibrated))
    assert [r["index"] for r in cohere] == [r["index"] for r in raw]  # one order either way
