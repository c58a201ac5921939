"""Issue 19 and 14 regressions: input checks, validation on assignment, top_n=0, metadata copies,
reranker_kwargs. Each test failed on the compressor before these fixes."""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.documents import Document
from langchain_crossrank import CrossRankRerank
from pydantic import ValidationError

from crossrank import Reranker

QUERY = "what do giant pandas eat"


@pytest.mark.parametrize(
    "bad, message",
    [
        (["plain text"], r"documents\[0\] is str, expected a langchain Document"),
        (None, "documents must be an iterable of langchain Document objects, got NoneType"),
        ("plain text", "documents must be an iterable .* got str"),
        (42, "documents must be an iterable .* got int"),
    ],
)
def test_bad_documents_are_a_type_error_naming_documents(reranker, documents, bad, message):
    compressor = CrossRankRerank(reranker=reranker)
    with pytest.raises(TypeError, match=message):
        compressor.compress_documents(bad, QUERY)
    with pytest.raises(TypeError, match=message):
        asyncio.run(compressor.acompress_documents(bad, QUERY))


def test_a_none_among_documents_is_named(reranker, documents):
    with pytest.raises(TypeError, match=r"documents\[1\] is NoneType"):
        CrossRankRerank(reranker=reranker).compress_documents([documents[0], None], QUERY)


def test_any_iterable_of_documents_works_including_a_generator(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker, top_n=None)
    expected = compressor.compress_documents(documents, QUERY)
    assert compressor.compress_documents((d for d in documents), QUERY) == expected
    assert compressor.compress_documents(tuple(documents), QUERY) == expected
    assert asyncio.run(compressor.acompress_documents(iter(documents), QUERY)) == expected


def test_fields_are_validated_on_assignment(reranker, documents):
    compressor = CrossRankRerank(reranker=reranker)
    for field, value in (("top_n", -10), ("batch_size", 0), ("score_threshold", 2.0)):
        with pytest.raises(ValidationError, match=field):
            setattr(compressor, field, value)
    compressor.top_n = 2
    compressor.score_threshold = 0.0
    assert len(compressor.compress_documents(documents, QUERY)) == 2


def test_fields_that_choose_the_model_are_frozen(reranker, bert_dir):
    compressor = CrossRankRerank(reranker=reranker)
    for field, value in (("model", bert_dir), ("device", "cpu"), ("reranker_kwargs", {})):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(compressor, field, value)
    assert compressor.reranker is reranker


def test_top_n_zero_is_one_rule_with_the_core(reranker, documents):
    texts = [d.page_content for d in documents]
    assert reranker.rank(QUERY, texts, top_k=0) == []  # the core's rule ...
    assert CrossRankRerank(reranker=reranker, top_n=0).compress_documents(documents, QUERY) == []
    assigned = CrossRankRerank(reranker=reranker)
    assigned.top_n = 0  # ... at construction and on assignment alike
    assert assigned.compress_documents(documents, QUERY) == []


def test_unpicklable_metadata_is_shared_the_rest_copied(reranker, documents, tmp_path):
    lock = threading.Lock()
    with open(tmp_path / "source.txt", "w") as handle:
        docs = [
            Document(
                page_content=d.page_content,
                id=d.id,
                metadata={
                    **d.metadata,
                    "lock": lock,
                    "file": handle,
                    "deep": {"lock": lock, "n": [1]},
                },
            )
            for d in documents
        ]
        result = CrossRankRerank(reranker=reranker, top_n=None).compress_documents(docs, QUERY)
        again = asyncio.run(
            CrossRankRerank(reranker=reranker, top_n=None).acompress_documents(docs, QUERY)
        )
    assert [d.id for d in result] == [d.id for d in again]
    for doc in result:
        assert doc.metadata["lock"] is lock and doc.metadata["file"] is handle
        assert doc.metadata["deep"]["lock"] is lock
        doc.metadata["deep"]["n"].append(2)
        doc.metadata["tags"].append("changed")
    assert all(d.metadata["deep"]["n"] == [1] and "changed" not in d.metadata["tags"] for d in docs)
    assert all("relevance_score" not in d.metadata for d in docs)


def test_reranker_kwargs_reach_the_reranker(bert_dir, documents):
    long_docs = [
        Document(page_content=" ".join([d.page_content or "empty"] * 40), id=d.id)
        for d in documents
    ]
    options = {"long_documents": "maxp", "stride": 16}
    compressor = CrossRankRerank(
        model=bert_dir, device="cpu", max_length=64, top_n=None, reranker_kwargs=options
    )
    assert compressor.reranker.long_documents == "maxp"
    direct = Reranker(bert_dir, device="cpu", max_length=64, **options)
    expected = direct.rank(QUERY, [d.page_content for d in long_docs])
    result = compressor.compress_documents(long_docs, QUERY)
    assert [d.id for d in result] == [long_docs[h.index].id for h in expected]
    assert [d.metadata["relevance_score"] for d in result] == pytest.approx(
        [h.score for h in expected], abs=1e-6
    )
    truncated = Reranker(bert_dir, device="cpu", max_length=64).rank(
        QUERY, [d.page_content for d in long_docs]
    )
    assert [h.score for h in truncated] != pytest.approx([h.score for h in expected])
    assert compressor.model_dump()["reranker_kwargs"] == options


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"reranker_kwargs": {"no_such_option": 1}}, r"reranker_kwargs\['no_such_option'\] is not"),
        (
            {"reranker_kwargs": {"dtype": "float32"}, "dtype": "bfloat16"},
            r"dtype is given twice, as dtype='bfloat16' and as reranker_kwargs\['dtype'\]",
        ),
        ({"reranker_kwargs": "backend=onnx"}, "reranker_kwargs"),
    ],
)
def test_bad_reranker_kwargs_name_the_key(bert_dir, kwargs, message):
    with pytest.raises((ValidationError, TypeError), match=message):
        CrossRankRerank(model=bert_dir, **kwargs)


def test_shared_reranker_reports_its_precision(bert_dir):
    bf16 = Reranker(bert_dir, device="cpu", max_length=128, dtype="bfloat16")
    compressor = CrossRankRerank(reranker=bf16)
    assert compressor.dtype == "bfloat16" and compressor.use_fp16 is None
    rebuilt = CrossRankRerank(**compressor.model_dump())
    assert rebuilt.reranker is not bf16 and rebuilt.reranker.dtype == bf16.dtype


def test_min_keep_is_passed_to_the_core(reranker, documents):
    texts = [d.page_content for d in documents]
    for top_n, min_keep in ((None, 2), (1, 3), (None, 0)):
        expected = reranker.rank(QUERY, texts, top_k=top_n, threshold=1.0, min_keep=min_keep)
        assert len(expected) == (min_keep if top_n is None else min(top_n, min_keep))
        compressor = CrossRankRerank(
            reranker=reranker, top_n=top_n, score_threshold=1.0, min_keep=min_keep
        )
        result = compressor.compress_documents(documents, QUERY)
        assert [d.id for d in result] == [documents[h.index].id for h in expected]
    with pytest.raises(ValidationError, match="min_keep"):
        compressor.min_keep = -1


def test_load_options_in_reranker_kwargs_land_in_their_fields(bert_dir):
    options = {"dtype": "bfloat16", "cache_size": 4}
    compressor = CrossRankRerank(model=bert_dir, max_length=128, reranker_kwargs=options)
    assert options == {"dtype": "bfloat16", "cache_size": 4}  # the caller's dict is not changed
    assert compressor.dtype == "bfloat16" and compressor.reranker_kwargs == {"cache_size": 4}
    assert str(compressor.reranker.dtype) == "torch.bfloat16"
    rebuilt = CrossRankRerank(**compressor.model_dump())
    assert rebuilt.reranker.dtype == compressor.reranker.dtype
