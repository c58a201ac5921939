"""Reranker(calibration=...): calibrated normalized scores, raw logits unchanged, cache valid."""

from __future__ import annotations

import shutil

import pytest

from crossrank import Reranker
from crossrank.calibration import CALIBRATION_FILE, Calibration
from crossrank.testing import SCORING_PAIRS as PAIRS

LIST_PAIRS = [list(p) for p in PAIRS]
QUERY = "what does a panda eat"
DOCS = ["the giant panda eats bamboo", "paris is the capital of france", "a python is a snake"]
PLATT = Calibration("platt", a=0.5, b=-1.0, source="test")


@pytest.fixture
def calibrated_dir(bert_dir, tmp_path):
    path = tmp_path / "model"
    shutil.copytree(bert_dir, path)
    PLATT.save(path / CALIBRATION_FILE)
    return str(path)


def test_calibration_auto_picks_up_the_file_and_maps_scores(calibrated_dir):
    plain = Reranker(calibrated_dir, max_length=48)
    calibrated = Reranker(calibrated_dir, max_length=48, calibration="auto", cache_size=10)
    raw = plain.compute_score(LIST_PAIRS)
    assert calibrated.compute_score(LIST_PAIRS) == pytest.approx(raw, abs=1e-6)  # raw unchanged
    expected = PLATT.probabilities(raw)
    assert calibrated.compute_score(LIST_PAIRS, normalize=True) == pytest.approx(expected, abs=1e-6)
    assert plain.compute_score(LIST_PAIRS, normalize=True) != pytest.approx(expected, abs=1e-3)
    hits = calibrated.rank(QUERY, DOCS)
    for hit in hits:
        assert hit.score == pytest.approx(PLATT.probabilities([hit.logit])[0], abs=1e-9)
    assert "platt" in repr(calibrated) and "platt" in calibrated.info()["calibration"]
    assert plain.info()["calibration"] is None
    # the cache keeps raw scores: a second call is served from it and still calibrated
    hits_before = calibrated.stats()["cache_hits"]
    again = calibrated.compute_score(LIST_PAIRS, normalize=True)
    assert calibrated.stats()["cache_hits"] - hits_before == len(PAIRS)
    assert again == pytest.approx(expected, abs=1e-6)


def test_calibration_path_and_missing_file(calibrated_dir, bert_dir):
    by_path = Reranker(bert_dir, max_length=48, calibration=f"{calibrated_dir}/{CALIBRATION_FILE}")
    assert by_path.calibration == Calibration.load(calibrated_dir)
    with pytest.warns(UserWarning, match="found no crossrank_calibration.json"):
        assert Reranker(bert_dir, max_length=48, calibration="auto").calibration is None
    with pytest.raises((OSError, ValueError)):
        Reranker(bert_dir, max_length=48, calibration=f"{bert_dir}/nope.json")


def test_threshold_applies_to_the_calibrated_score(calibrated_dir):
    reranker = Reranker(calibrated_dir, max_length=48, calibration="auto")
    scores = reranker.compute_score([[QUERY, d] for d in DOCS], normalize=True)
    cut = sorted(scores)[1]
    kept = reranker.rank(QUERY, DOCS, threshold=cut)
    assert {h.index for h in kept} == {i for i, s in enumerate(scores) if s >= cut}
