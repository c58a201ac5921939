"""Settings cannot drift: read-only attributes, one frozen validated object, the cache key."""

from __future__ import annotations

import dataclasses

import pytest

from crossrank import Reranker
from crossrank.settings import Settings
from crossrank.testing import SCORING_PAIRS as PAIRS

LIST_PAIRS = [list(p) for p in PAIRS]


def test_assigning_a_score_setting_is_refused_and_scores_stay_right(bert_dir):
    reranker = Reranker(bert_dir, max_length=64, cache_size=100)
    before = reranker.compute_score(LIST_PAIRS)
    with pytest.raises(AttributeError, match=r"max_length is read-only.*compute_score"):
        reranker.max_length = 24
    for name, value in (("dtype", "bfloat16"), ("long_documents", "maxp"), ("model_name", "x")):
        with pytest.raises(AttributeError, match=f"{name} is read-only"):
            setattr(reranker, name, value)
    assert reranker.max_length == 64 and "max_length=64" in repr(reranker)
    assert reranker.compute_score(LIST_PAIRS) == before
    # the documented way to get other scores: a fresh reranker, or per-call lengths
    fresh = Reranker(bert_dir, max_length=24).compute_score(LIST_PAIRS)
    assert reranker.compute_score(LIST_PAIRS, max_length=24) == pytest.approx(fresh, abs=1e-6)
    assert fresh != pytest.approx(before, abs=1e-4)  # 24 tokens really cut these pairs
    # and the cache kept the two apart (the per-call length is part of the key)
    assert reranker.compute_score(LIST_PAIRS) == before


def test_batch_size_and_progress_can_be_assigned_checked(bert_dir):
    reranker = Reranker(bert_dir, max_length=48)
    before = reranker.compute_score(LIST_PAIRS)
    reranker.batch_size = 2
    reranker.show_progress_bar = False
    assert reranker.settings.batch_size == 2
    assert reranker.compute_score(LIST_PAIRS) == pytest.approx(before, abs=1e-5)
    for bad in (0, "8", 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            reranker.batch_size = bad
    assert reranker.batch_size == 2


def test_settings_are_frozen_and_checked_on_replace(bert_dir):
    settings = Reranker(bert_dir, max_length=48).settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_length = 12  # type: ignore[misc]
    with pytest.raises(ValueError, match="query_max_length=60 must be less than max_length=48"):
        settings.replace(query_max_length=60)
    with pytest.raises(ValueError, match="long_documents"):
        settings.replace(long_documents="split")
    assert settings.replace(batch_size=4).score_key() == settings.score_key()
    assert settings.replace(max_length=32).score_key() != settings.score_key()


def test_settings_record_what_runs(bert_dir):
    reranker = Reranker(bert_dir, max_length=1000)  # more than the tiny model's 128 positions
    assert reranker.settings.max_length == 128 == reranker.info()["max_length"]
    info = reranker.info()
    assert info["family"] == "cross-encoder" and info["backend"] == "torch"
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["query_max_length"] == 96  # 3/4 of max_length, FlagReranker's default


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_length": 8}, "max_length must be an int >= 16"),
        ({"max_length": 48, "query_max_length": 48}, "must be less than max_length=48"),
        ({"query_max_length": 0}, "query_max_length must be an int >= 1"),
        ({"query_max_length": -5}, "query_max_length must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"show_progress_bar": "yes"}, "show_progress_bar must be True or False"),
        ({"backend": "tensorrt"}, "backend must be 'torch', 'onnx' or 'openvino'"),
        ({"quantize": "int8"}, r"quantize='int8' needs backend='onnx'.* or backend='openvino'"),
        ({"use_fp16": "yes"}, "use_fp16 must be True, False or None"),
        ({"calibration": 3}, "calibration must be None, 'auto' or the path"),
    ],
)
def test_every_option_is_checked_in_one_place(bert_dir, options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Settings.create(bert_dir, device="cpu", **options)
    with pytest.raises((TypeError, ValueError), match=message):
        Reranker(bert_dir, device="cpu", **options)
