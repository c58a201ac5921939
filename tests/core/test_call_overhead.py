"""One small rank call does no needless work: one tokenizer call for the query, one for the
passages, and batches built from the compact token arrays without a Python int per token."""

from __future__ import annotations

from array import array

import pytest
import torch

from crossrank import Reranker
from crossrank.batching import collate

DOCUMENTS = [
    f"the giant panda {i} eats bamboo in china and sleeps" * (1 + i % 3) for i in range(50)
]


class CountingTokenizer:
    """A tokenizer that records the texts of each call and otherwise is the real one."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = []

    def __call__(self, texts, **options):
        self.calls.append(list(texts))
        return self.inner(texts, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_rank_call_tokenizes_the_query_once(bert_dir, monkeypatch):
    reranker = Reranker(bert_dir, max_length=48)
    expected = reranker.rank("what is a panda?", DOCUMENTS)
    counting = CountingTokenizer(reranker.encoder.tokenizer)
    monkeypatch.setattr(reranker.encoder, "tokenizer", counting)
    got = reranker.rank("what is a panda?", DOCUMENTS)
    assert counting.calls == [["what is a panda?"], DOCUMENTS]
    assert [(h.index, h.logit) for h in got] == [(h.index, h.logit) for h in expected]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_collate_of_compact_arrays_equals_collate_of_lists(padding_side):
    rows = [[101, 7, 8, 102, 9, 102], [101, 5, 102], [101, 6, 102, 4, 102]]
    types = [[0, 0, 0, 0, 1, 1], [0, 0, 0], [0, 0, 0, 1, 1]]
    lists = [{"input_ids": r, "token_type_ids": t} for r, t in zip(rows, types)]
    arrays = [
        {"input_ids": array("i", f["input_ids"]), "token_type_ids": array("b", f["token_type_ids"])}
        for f in lists
    ]
    expected, got = collate(lists, 0, padding_side), collate(arrays, 0, padding_side)
    assert set(got) == {"input_ids", "attention_mask", "token_type_ids"}
    for name, tensor in got.items():
        assert tensor.dtype == torch.long
        assert torch.equal(tensor, expected[name]), name
    assert expected["input_ids"][1].tolist() == (
        [101, 5, 102, 0, 0, 0] if padding_side == "right" else [0, 0, 0, 101, 5, 102]
    )
