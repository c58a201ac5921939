"""Bad input gets an error naming the argument; caller's data is never mutated."""

from __future__ import annotations

import copy

import pytest

from crossrank import ModelLoadError, Reranker


@pytest.fixture(scope="module")
def reranker(bert_dir):
    return Reranker(bert_dir, max_length=48)


@pytest.mark.parametrize(
    "query, error, match",
    [
        (None, TypeError, "query"),
        (3, TypeError, "query"),
        ("", ValueError, "query"),
        ("  ", ValueError, "query"),
    ],
)
def test_bad_query(reranker, query, error, match):
    with pytest.raises(error, match=match):
        reranker.rank(query, ["doc"])


@pytest.mark.parametrize(
    "documents, match",
    [
        (None, "documents"),
        ("one string", "documents"),
        (["ok", None], r"documents\[1\]"),
        ([1, "x"], r"documents\[0\]"),
    ],
)
def test_bad_documents(reranker, documents, match):
    with pytest.raises(TypeError, match=match):
        reranker.rank("panda", documents)


@pytest.mark.parametrize("top_k, error", [(-1, ValueError), ("3", TypeError), (1.5, TypeError)])
def test_bad_top_k(reranker, top_k, error):
    with pytest.raises(error, match="top_k"):
        reranker.rank("panda", ["doc"], top_k=top_k)


@pytest.mark.parametrize(
    "pairs, match",
    [
        (None, "sentence_pairs"),
        ("query", "sentence_pairs"),
        (["only one"], "sentence_pairs"),
        (["q", "p", "extra"], "sentence_pairs"),
        ([["q", "p"], ["q", 5]], r"sentence_pairs\[1\]"),
        ([["q", "p"], "qp"], r"sentence_pairs\[1\]"),
    ],
)
def test_bad_pairs(reranker, pairs, match):
    with pytest.raises(TypeError, match=match):
        reranker.compute_score(pairs)


def test_missing_model_path_names_the_argument(tmp_path):
    with pytest.raises(ModelLoadError, match="model=.*no such directory"):
        Reranker(str(tmp_path / "does-not-exist"))


def test_directory_without_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="could not load model"):
        Reranker(str(tmp_path))


def test_unreachable_hub_fails_fast_naming_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="CLI: --model PATH"):
        Reranker("some-org/some-reranker-that-is-not-cached")


@pytest.mark.parametrize("device", ["gpu", "tpu0", "cuda:banana", ""])
def test_unknown_device(bert_dir, device):
    with pytest.raises(ValueError, match="device"):
        Reranker(bert_dir, device=device)


def test_bad_settings(bert_dir):
    with pytest.raises(ValueError, match="batch_size"):
        Reranker(bert_dir, batch_size=0)
    with pytest.raises(ValueError, match="max_length"):
        Reranker(bert_dir, max_length=4)
    with pytest.raises(ValueError, match="dtype"):
        Reranker(bert_dir, dtype="int3")


def test_three_logit_head_is_refused(tmp_path):
    from crossrank.testing import save_model

    path = save_model(tmp_path / "m", "bert", num_labels=3)
    with pytest.raises(ModelLoadError, match="3 outputs"):
        Reranker(path)


def test_inputs_are_not_mutated(reranker):
    docs = ["The giant panda eats bamboo.", "A python is a snake.", ""]
    pairs = [["panda", d] for d in docs]
    docs_before, pairs_before = copy.deepcopy(docs), copy.deepcopy(pairs)
    reranker.rank("panda", docs, top_k=1)
    reranker.compute_score(pairs, normalize=True)
    assert docs == docs_before and pairs == pairs_before


def test_tuple_and_generator_documents(reranker):
    docs = ("The giant panda eats bamboo.", "A python is a snake.")
    assert [h.index for h in reranker.rank("panda", docs)] == [
        h.index for h in reranker.rank("panda", (d for d in docs))
    ]
