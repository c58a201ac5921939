"""RemoteReranker.rank(first_stage_scores=...): fused client-side on the server's raw logits."""

from __future__ import annotations

import asyncio

import pytest

from crossrank import Reranker
from crossrank.client.remote import RemoteReranker, RemoteRerankError
from crossrank.errors import ArgumentError
from crossrank.testing import stub_service

pytest.importorskip("fastapi", reason="needs a crossrank server: crossrank[serve]")
pytest.importorskip("uvicorn", reason="needs a crossrank server: crossrank[serve]")

QUERY = "what does a panda eat"
DOCS = [
    "Paris is the capital city of France.",
    "The giant panda eats bamboo.",
    "A python is a snake.",
    "Rain falls from a cloud in the sky.",
    "Bears of china eat bamboo.",
]
FIRST_STAGE = [3.5, 12.0, 0.25, 7.75, 1.5]


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


@pytest.fixture(scope="module")
def server_url(reranker):
    from crossrank.serve import ServeSettings, create_app
    from crossrank.testing import serving

    with serving(create_app(reranker, ServeSettings(api_key="k")), healthy=True) as url:
        yield url


def fields(hits):
    return [(h.index, h.text) for h in hits], [
        (h.score, h.logit, h.rerank_score, h.first_stage_score) for h in hits
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"fusion": "minmax", "fusion_weight": 0.5},
        {"fusion": "rrf", "fusion_weight": 0.3, "top_k": 3},
        {"fusion": "minmax", "fusion_weight": 0.8, "threshold": 0.5, "min_keep": 1},
    ],
)
def test_remote_fusion_equals_local(server_url, reranker, options):
    remote = RemoteReranker(server_url, api_key="k")
    local = reranker.rank(QUERY, DOCS, first_stage_scores=FIRST_STAGE, **options)
    first = list(FIRST_STAGE)
    for hits in (
        remote.rank(QUERY, DOCS, first_stage_scores=first, **options),
        asyncio.run(remote.arank(QUERY, DOCS, first_stage_scores=first, **options)),
    ):
        (got_order, got), (want_order, want) = fields(hits), fields(local)
        assert got_order == want_order
        for g, w in zip(got, want):
            assert g == pytest.approx(w, abs=1e-6)
    assert first == FIRST_STAGE


def test_the_request_asks_raw_scores_of_every_document():
    answer = [{"index": 1, "score": 2.0}, {"index": 0, "score": -1.0}, {"index": 2, "score": 0.5}]
    with stub_service(answer) as (url, seen):
        remote = RemoteReranker(url, model="m")
        hits = remote.rank(
            QUERY, DOCS[:3], top_k=1, threshold=0.2, first_stage_scores=[9.0, 1.0, 5.0]
        )
    assert [(path, body) for path, _, body in seen] == [
        ("/rerank", {"query": QUERY, "texts": DOCS[:3], "raw_scores": True, "model": "m"})
    ]
    # minmax 0.5: doc0 .5*1 + .5*0 = .5, doc1 .5*0 + .5*1 = .5, doc2 .5*.5 + .5*.5 = .5: a tie of
    # fused scores, broken by the logit
    assert [(h.index, h.score, h.logit) for h in hits] == [(1, 0.5, 2.0)]


@pytest.mark.parametrize(
    "answer",
    [
        [{"index": 0, "score": 1.0}],  # a document missing
        [{"index": 0, "score": 1.0}, {"index": 0, "score": 2.0}],  # scored twice
        [{"index": 0, "score": 1.0}, {"index": 5, "score": 2.0}],  # not a position
        [{"index": 0, "score": 1.0}, {"index": 1, "score": "x"}],
        {"results": []},
    ],
)
def test_an_answer_that_is_not_one_logit_per_document_is_a_clear_error(answer):
    with stub_service(answer) as (url, _):
        remote = RemoteReranker(url)
        with pytest.raises(RemoteRerankError, match="did not answer like a crossrank /rerank"):
            remote.rank(QUERY, DOCS[:2], first_stage_scores=[1.0, 2.0])
        with pytest.raises(RemoteRerankError, match=f"{url}/rerank"):
            asyncio.run(remote.arank(QUERY, DOCS[:2], first_stage_scores=[1.0, 2.0]))


def test_bad_arguments_are_refused_before_any_request():
    with stub_service([]) as (url, seen):
        remote = RemoteReranker(url)
        with pytest.raises(ArgumentError, match="first_stage_scores has 1 scores for 2"):
            remote.rank(QUERY, DOCS[:2], first_stage_scores=[1.0])
        with pytest.raises(ArgumentError, match="fusion_weight"):
            remote.rank(QUERY, DOCS[:2], first_stage_scores=[1.0, 2.0], fusion_weight=2)
        with pytest.raises(ArgumentError, match="fusion must be one of"):
            remote.rank(QUERY, DOCS[:2], fusion="sum")
        assert remote.rank(QUERY, [], first_stage_scores=[]) == []
        assert remote.rank(QUERY, DOCS[:2], top_k=0, first_stage_scores=[1.0, 2.0]) == []
    assert seen == []
