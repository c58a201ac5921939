"""Hypothesis properties of CrossRankRerank: for any documents and selection, the result is
``Reranker.rank``'s, mapped onto new documents, and the caller's documents are untouched."""

from __future__ import annotations

import copy

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankRerank

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORDS = ["panda", "bamboo", "bear", "china", "paris", "code", "rain", "the", "eats", ""]
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)
documents = st.lists(
    st.builds(
        lambda text, tags: Document(
            page_content=text, metadata={"tags": tags, "deep": {"t": tags}}
        ),
        texts,
        st.lists(st.integers(0, 9), max_size=3),
    ),
    max_size=8,
)
selection = st.fixed_dictionaries(
    {
        "top_n": st.one_of(st.none(), st.integers(0, 10)),
        "score_threshold": st.one_of(st.none(), st.floats(0.0, 1.0)),
        "min_keep": st.integers(0, 4),
    }
)
QUERIES = st.sampled_from(["what do pandas eat", "paris rain", "code"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=documents, query=QUERIES, options=selection)
def test_result_is_the_cores_rank_and_inputs_are_untouched(reranker, docs, query, options):
    before = copy.deepcopy([(d.page_content, d.metadata) for d in docs])
    result = CrossRankRerank(reranker=reranker, **options).compress_documents(iter(docs), query)
    expected = reranker.rank(
        query,
        [d.page_content for d in docs],
        top_k=options["top_n"],
        threshold=options["score_threshold"],
        min_keep=options["min_keep"],
    )
    assert [(d.page_content, d.metadata["relevance_score"]) for d in result] == [
        (h.text, h.score) for h in expected
    ]
    assert [(d.page_content, d.metadata) for d in docs] == before
    for doc, hit in zip(result, expected):
        assert (
            doc is not docs[hit.index]
            and doc.metadata["tags"] is not docs[hit.index].metadata["tags"]
        )
