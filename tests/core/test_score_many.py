"""Reranker.score_many: raw logits in input order beneath rank, rank_many and the service.

Every edge is score_many plus one Selection; a passage token limit cut while tokenizing gives the
scores of the old way (cut the text after N tokens, then score it).
"""

from __future__ import annotations

import pytest

from crossrank import Reranker
from crossrank.errors import ArgumentError
from crossrank.results import Selection
from crossrank.testing import LONG_PASSAGE, PANDA_DOCS, PANDA_QUERY

QUERIES = ["what is a panda?", "where is paris?", "what is a panda?"]
DOCS = [
    PANDA_DOCS,
    ["paris is the capital city of france", "zyzzyva quokka", PANDA_DOCS[0]],
    [PANDA_DOCS[1], PANDA_DOCS[1]],  # a duplicate pair
]
# Words the tiny vocabularies lack split into sub-words, so a limit can fall inside a word.
SUBWORDS = "the gigantopithecus ate bamboozling quantities of bamboo in the xylophone rain " * 6


def cut_like_before(tokenizer, texts, limit):
    """The service's old max_tokens_per_doc: tokenize, cut the text at the limit-th token's end."""
    encoded = tokenizer(
        texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False
    )
    return [
        text if len(offsets) <= limit else text[: offsets[limit - 1][1]]
        for text, offsets in zip(texts, encoded["offset_mapping"])
    ]


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, device="cpu", max_length=64)


def test_score_many_equals_compute_score_pair_by_pair(reranker):
    got = reranker.score_many(QUERIES, DOCS, batch_size=2)
    assert [len(own) for own in got] == [len(own) for own in DOCS]
    for query, own, scores in zip(QUERIES, DOCS, got):
        for text, score in zip(own, scores):
            assert score == pytest.approx(reranker.compute_score([query, text]), abs=1e-5)
    assert got[2][0] == got[2][1]  # equal pairs tie exactly
    assert reranker.score_many([], []) == []
    assert reranker.score_many(["q"], [[]]) == [[]]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"normalize": False},
        {"top_k": 2, "threshold": 0.4, "min_keep": 1},
        {"first_stage_scores": [[3.0, 1.0, 2.0, 0.5, 0.1, 4.0][: len(DOCS[0])]], "top_k": 3},
        {"first_stage_scores": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][: len(DOCS[0])]], "fusion": "rrf"},
    ],
)
def test_rank_is_score_many_then_one_selection(reranker, options):
    first_stage = options.pop("first_stage_scores", None)
    hits = reranker.rank(
        PANDA_QUERY,
        DOCS[0],
        first_stage_scores=None if first_stage is None else first_stage[0],
        **options,
    )
    many = reranker.rank_many([PANDA_QUERY], [DOCS[0]], first_stage_scores=first_stage, **options)[
        0
    ]
    logits = reranker.score_many([PANDA_QUERY], [DOCS[0]])[0]
    selection = Selection(
        top_k=options.get("top_k"),
        threshold=options.get("threshold"),
        min_keep=options.get("min_keep", 0),
        normalize=options.get("normalize", True),
        fusion=options.get("fusion", "minmax"),
    )
    want = selection.apply(logits, DOCS[0], None if first_stage is None else first_stage[0])
    assert hits == many == want
    assert hits  # something was selected, so the comparison says something


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta", "deberta-v2"])
@pytest.mark.parametrize("long_documents", ["truncate", "maxp"])
def test_passage_token_limits_equal_the_old_cut_text_path(model_dirs, kind, long_documents):
    rr = Reranker(model_dirs[kind], device="cpu", max_length=48, long_documents=long_documents)
    texts = [SUBWORDS, LONG_PASSAGE, "bamboozling", PANDA_DOCS[1], ""]
    limits = [1, 3, 7, 20, 40]
    for limit in limits:
        cut = cut_like_before(rr.tokenizer, texts, limit)
        assert cut != texts or limit >= 40
        queries = [PANDA_QUERY] * len(texts)
        encode = rr.encoder.encode_windows if long_documents == "maxp" else rr.encoder.encode
        args = (rr.settings.stride,) if long_documents == "maxp" else ()
        assert encode(queries, texts, *args, [limit] * len(texts)) == encode(queries, cut, *args)
        got = rr.score_many([PANDA_QUERY], [texts], passage_token_limits=[limit])[0]
        assert got == pytest.approx(rr.score_many([PANDA_QUERY], [cut])[0], abs=1e-5)


@pytest.mark.parametrize("kind", ["qwen3", "gemma"])
def test_decoder_passage_token_limits_equal_the_old_cut_text_path(decoder_dirs, kind):
    rr = Reranker(decoder_dirs[kind], device="cpu", max_length=96)
    texts = [SUBWORDS, PANDA_DOCS[1], "bamboozling"]
    for limit in (2, 9):
        cut = cut_like_before(rr.tokenizer, texts, limit)
        got = rr.score_many([PANDA_QUERY], [texts], passage_token_limits=[limit])[0]
        assert got == pytest.approx(rr.score_many([PANDA_QUERY], [cut])[0], abs=1e-5)


def test_each_query_has_its_own_limit_and_the_cache_keeps_them_apart(bert_dir):
    rr = Reranker(bert_dir, device="cpu", max_length=64, cache_size=100)
    texts = [SUBWORDS, PANDA_DOCS[1]]
    both = rr.score_many([PANDA_QUERY] * 3, [texts] * 3, passage_token_limits=[2, None, 1000])
    assert both[0] != both[1]  # the limit cut the passages
    assert both[1] == both[2]  # a limit of max_length or more cuts nothing
    cut = cut_like_before(rr.tokenizer, texts, 2)
    assert both[0] == pytest.approx(rr.score_many([PANDA_QUERY], [cut])[0], abs=1e-5)
    before = rr.stats()["pairs_scored"]
    again = rr.score_many([PANDA_QUERY] * 2, [texts] * 2, passage_token_limits=[2, None])
    assert again == both[:2] and rr.stats()["pairs_scored"] == before  # all cache hits


@pytest.mark.parametrize(
    "limits, words",
    [
        ([1], r"passage_token_limits has 1 entries for 2 queries"),
        ([2, 0], r"passage_token_limits\[1\] must be an int >= 1"),
        ([True, 2], r"passage_token_limits\[0\] must be an int"),
        ("ab", r"passage_token_limits must be a list"),
    ],
)
def test_bad_passage_token_limits_name_the_argument(reranker, limits, words):
    with pytest.raises((ArgumentError, TypeError), match=words):
        reranker.score_many(["a", "b"], [["x"], ["y"]], passage_token_limits=limits)
