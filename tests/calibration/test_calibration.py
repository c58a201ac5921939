"""``crossrank.calibration``, ``crossrank.calibration.thresholds`` and ``crossrank calibrate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from crossrank.calibration import (
    CALIBRATION_FILE,
    Calibration,
    brier_score,
    expected_calibration_error,
    find_calibration,
)
from crossrank.calibration.thresholds import suggest_threshold, threshold_table

try:
    import sklearn.isotonic
    import sklearn.linear_model
except ImportError:  # applying and the JSON need no scikit-learn; fitting does
    sklearn = None
needs_sklearn = pytest.mark.skipif(
    sklearn is None, reason="fitting needs scikit-learn: pip install 'crossrank[calibration]'"
)


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=float)))


def draw(true_probability, n=20_000, seed=0):
    """Logits spread over [-6, 6] and labels drawn from the true P(relevant | logit)."""
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-6, 6, n)
    labels = (rng.random(n) < true_probability(logits)).astype(int)
    return logits, labels


# ---------------------------------------------------------------- fitting recovers a known mapping


@needs_sklearn
def test_platt_recovers_a_known_logistic_mapping():
    logits, labels = draw(lambda x: sigmoid(0.6 * x - 1.5))
    cal = Calibration.fit(logits, labels, "platt")
    assert cal.method == "platt"
    assert cal.a == pytest.approx(0.6, abs=0.04) and cal.b == pytest.approx(-1.5, abs=0.08)
    grid = np.linspace(-6, 6, 61)
    assert np.max(np.abs(np.array(cal.probabilities(grid)) - sigmoid(0.6 * grid - 1.5))) < 0.03
    # It is scikit-learn's unregularised logistic regression, applied without scikit-learn.
    model = sklearn.linear_model.LogisticRegression(C=np.inf).fit(logits[:, None], labels)
    assert cal.probabilities(grid) == pytest.approx(model.predict_proba(grid[:, None])[:, 1])


@needs_sklearn
def test_isotonic_recovers_a_monotone_non_logistic_mapping():
    truth = lambda x: np.clip((x + 4) / 8, 0, 1) ** 2  # noqa: E731 - not a sigmoid of anything
    logits, labels = draw(truth)
    cal = Calibration.fit(logits, labels, "isotonic")
    grid = np.linspace(-5.5, 5.5, 45)
    assert np.mean(np.abs(np.array(cal.probabilities(grid)) - truth(grid))) < 0.03
    # numpy.interp over the stored points is exactly scikit-learn's prediction, clipped outside.
    iso = sklearn.isotonic.IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
    iso.fit(logits, labels)
    wide = np.linspace(-9, 9, 101)
    assert cal.probabilities(wide) == pytest.approx(iso.predict(wide), abs=1e-12)
    probabilities = cal.probabilities(wide)
    assert (
        probabilities == sorted(probabilities)
        and 0 <= min(probabilities) <= max(probabilities) <= 1
    )


@needs_sklearn
def test_calibration_beats_the_sigmoid_on_held_out_queries():
    from crossrank.cli.calibrate import measure, split_queries

    # 200 queries of 20 candidates whose sigmoid is far too confident: P = sigmoid(0.4 x - 2).
    rng = np.random.default_rng(7)
    per_query = {}
    for q in range(200):
        logits = rng.normal(-2, 4, 20)
        per_query[f"q{q}"] = (logits, (rng.random(20) < sigmoid(0.4 * logits - 2)).astype(int))
    fit_ids, held_ids = split_queries(list(per_query), 0.3, seed=3)
    assert len(held_ids) == 60 and not set(fit_ids) & set(held_ids)
    for method in ("platt", "isotonic"):
        cal = Calibration.fit(
            np.concatenate([per_query[q][0] for q in fit_ids]),
            np.concatenate([per_query[q][1] for q in fit_ids]),
            method,
        )
        held = measure(
            cal, [per_query[q][0] for q in held_ids], [per_query[q][1] for q in held_ids]
        )
        assert held["queries"] == 60 and held["pairs"] == 1200
        assert held["ece_after"] <= held["ece_before"] / 2 and held["ece_after"] < 0.05, method
        assert held["brier_after"] < held["brier_before"], method


def test_split_queries_is_seeded_and_by_query():
    from crossrank.cli.calibrate import split_queries

    ids = [f"q{i}" for i in range(10)]
    first = split_queries(ids, 0.3, seed=1)
    assert first == split_queries(list(reversed(ids)), 0.3, seed=1)  # input order does not matter
    assert first != split_queries(ids, 0.3, seed=2)
    assert len(first[1]) == 3 and sorted(first[0] + first[1]) == sorted(ids)
    with pytest.raises(ValueError, match="--held-out"):
        split_queries(ids, 1.0, seed=0)
    with pytest.raises(ValueError, match="at least 2 judged queries"):
        split_queries(["q"], 0.3, seed=0)


# ---------------------------------------------------------------- applying


def test_probabilities_are_float64_in_range_without_overflow():
    for cal in (Calibration("platt", a=3.0, b=1.0), Calibration("sigmoid")):
        with np.errstate(all="raise"):
            p = cal.probabilities([-1e6, -40.0, 0.0, 40.0, 1e6])
        assert p[0] == 0.0 and p[-1] == 1.0 and all(isinstance(v, float) for v in p)
        assert p == sorted(p)
    assert Calibration("sigmoid").probabilities([0.0, 2.0]) == pytest.approx([0.5, sigmoid(2.0)])
    assert Calibration("platt", a=2.0, b=-1.0).probabilities([]) == []


def test_bad_input_names_the_argument():
    cal = Calibration("platt", a=1.0, b=0.0)
    with pytest.raises(ValueError, match="logits must be finite"):
        cal.probabilities([0.0, float("nan")])
    with pytest.raises(TypeError, match="logits must be a sequence of numbers"):
        cal.probabilities(["high"])
    with pytest.raises(ValueError, match="labels must be 0"):
        Calibration.fit([0.0, 1.0], [0, 2])
    with pytest.raises(ValueError, match="both relevant"):
        Calibration.fit([0.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        Calibration.fit([0.0, 1.0], [1])
    with pytest.raises(ValueError, match="method must be one of"):
        Calibration.fit([0.0, 1.0], [0, 1], method="beta")
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration("isotonic", x=(0.0, 1.0), y=(0.9, 0.1))


def test_immutable_and_never_shares_caller_data():
    report = {"ece": 0.1}
    logits = [2.0, -1.0]
    cal = Calibration("platt", a=1.0, b=0.0, report=report)
    cal.probabilities(logits)
    assert logits == [2.0, -1.0]
    report["ece"] = 0.9
    assert cal.report["ece"] == 0.1
    with pytest.raises(FrozenInstanceError):
        cal.a = 2.0
    with pytest.raises(TypeError):
        cal.report["ece"] = 0.5


# ---------------------------------------------------------------- metrics


def test_ece_uses_equal_mass_bins():
    # Two bins of two: |0.2 - 0.5| and |0.8 - 1.0|, each half the pairs.
    assert expected_calibration_error([0.2, 0.8, 0.2, 0.8], [0, 1, 1, 1], bins=2) == pytest.approx(
        0.25
    )
    # 15 bins by default: 30 scores make 15 bins of 2, each scoring |p - share| = 0.
    p = np.repeat(np.linspace(0.05, 0.95, 15), 2)
    labels = np.tile([0, 1], 15)
    assert expected_calibration_error(p, labels) == pytest.approx(float(np.mean(np.abs(p - 0.5))))
    assert expected_calibration_error([], []) == 0.0


def test_brier_score():
    assert brier_score([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx((0.01 + 0.04 + 0.25) / 3)


def test_threshold_table_counts_per_query():
    scores = [[0.9, 0.6, 0.1], [0.4, 0.3], [0.2]]
    labels = [[1, 0, 1], [1, 0], [0]]
    rows = threshold_table(scores, labels, [0.05, 0.35, 0.5, 0.95])
    assert [r.precision for r in rows[:3]] == pytest.approx([3 / 6, 2 / 3, 1 / 2])
    assert [r.recall for r in rows[:3]] == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert [r.kept_per_query for r in rows] == pytest.approx([2.0, 1.0, 2 / 3, 0.0])
    assert [r.share_empty for r in rows] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert np.isnan(rows[3].precision)  # nothing kept: no precision to speak of


def test_suggest_threshold_max_f1_and_target_precision():
    scores = [[0.95, 0.8, 0.3], [0.7, 0.6, 0.1]]
    labels = [[1, 0, 1], [1, 0, 0]]
    # Best F1 cutting after 0.3 (kept 5: P 3/5, R 1, F1 .75; after 0.7: P 2/3, R 2/3, F1 .67);
    # the threshold sits halfway down to the next score, 0.1.
    assert suggest_threshold(scores, labels) == pytest.approx(0.2)
    assert suggest_threshold(scores, labels, target_precision=1.0) == pytest.approx(0.875)
    assert suggest_threshold(scores, labels, target_precision=0.6) == pytest.approx(0.2)
    assert suggest_threshold([[0.5, 0.4]], [[0, 1]], target_precision=0.9) is None
    assert suggest_threshold([[0.5]], [[0]]) is None
    with pytest.raises(ValueError, match="target_precision"):
        suggest_threshold(scores, labels, target_precision=1.5)


# ---------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "cal",
    [
        Calibration("platt", a=0.7, b=-2.25, source="scifact train, 566 queries"),
        Calibration("isotonic", x=(-3.0, 0.0, 2.5), y=(0.0, 0.25, 0.9), suggested_threshold=0.4),
        Calibration("sigmoid"),
    ],
)
def test_json_round_trip(tmp_path, cal):
    path = cal.save(tmp_path)  # a directory gets the standard file name
    assert path == os.path.join(tmp_path, CALIBRATION_FILE)
    loaded = Calibration.load(path)
    assert loaded == cal and loaded.path == path
    assert loaded.probabilities([-4.0, 0.1, 3.0]) == cal.probabilities([-4.0, 0.1, 3.0])
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert loaded.describe().startswith(f"{cal.method} ({CALIBRATION_FILE}")
    assert find_calibration(tmp_path) == path and Calibration.load(tmp_path) == cal


def test_find_calibration_without_a_file(tmp_path):
    assert find_calibration(tmp_path) is None
    assert find_calibration("BAAI/bge-reranker-base") is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a valid JSON calibration file"),
        ("[1, 2]", "expected a JSON object"),
        (
            '{"method": "platt", "parameters": {"a": 1, "b": 0}}',
            "missing key 'crossrank_calibration'",
        ),
        (
            '{"crossrank_calibration": 2, "method": "platt", "parameters": {"a": 1, "b": 0}}',
            "format version 2 is not supported",
        ),
        (
            '{"crossrank_calibration": 1, "method": "platt", "parameters": {"a": 1}}',
            "missing 'b'",
        ),
        (
            '{"crossrank_calibration": 1, "method": "beta", "parameters": {}}',
            "method must be one of",
        ),
        (
            '{"crossrank_calibration": 1, "method": "isotonic", "parameters": {"x": [0, 1], "y": [0.5]}}',
            "equally long",
        ),
        (
            '{"crossrank_calibration": 1, "method": "platt", "parameters": {"a": "x", "b": 0}}',
            "must be finite numbers",
        ),
    ],
)
def test_corrupt_files_are_named(tmp_path, content, message):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        Calibration.load(path)
    assert str(path) in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Calibration.load(tmp_path / "nope.json")


def test_loading_and_applying_need_no_scikit_learn(tmp_path):
    path = Calibration("isotonic", x=(-1.0, 1.0), y=(0.1, 0.8)).save(tmp_path / "c.json")
    code = (
        "import sys; sys.modules['sklearn'] = None\n"  # any import of sklearn now fails
        "from crossrank.calibration import Calibration\n"
        f"print([round(p, 9) for p in Calibration.load({path!r}).probabilities([0.0, 5.0])])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0.45, 0.8]"


# ---------------------------------------------------------------- crossrank calibrate, end to end

cli_needs = pytest.mark.skipif(
    sklearn is None
    or any(
        __import__("importlib").util.find_spec(m) is None
        for m in ("bm25s", "Stemmer", "ir_measures")
    ),
    reason="crossrank calibrate needs the eval and calibration extras",
)


@pytest.fixture
def tiny_setup(tmp_path):
    from crossrank.testing import save_model, write_tiny_beir

    return write_tiny_beir(tmp_path / "tiny"), save_model(tmp_path / "model", "bert")


def _calibrate(*args):
    from crossrank.cli.commands import main

    return main(
        ["calibrate", *map(str, args), "--max-length", "128", "--device", "cpu", "--no-progress"]
    )


@cli_needs
def test_cli_fits_on_some_queries_measures_on_the_others(tiny_setup, capsys):
    from crossrank import Reranker
    from crossrank.cli.calibrate import split_queries
    from crossrank.evaluation import BM25, load_beir

    data_dir, model_dir = tiny_setup
    assert (
        _calibrate(data_dir, "--model", model_dir, "--split", "train", "--top-n", 5, "--seed", 4)
        == 0
    )
    out = capsys.readouterr().out
    saved = Calibration.load(find_calibration(model_dir))  # saved next to the model
    assert saved.method == "platt" and f"saved: {saved.path}" in out
    assert "fitted on 14 queries, measured on 6 held-out queries (seed 4)" in out
    assert saved.source == "tiny train, 14 queries, BM25 top-5"

    # Redo the measurement by hand: the same split, BM25 candidates and raw scores.
    data = load_beir(data_dir, "train")
    run = BM25(data).search(data.queries, 5)
    fit_ids, held_ids = split_queries(list(data.qrels), 0.3, seed=4)
    reranker = Reranker(model_dir, max_length=128, device="cpu")

    def logits_labels(ids):
        logits, labels = [], []
        for q in ids:
            docs = list(run[q])
            logits.append(
                reranker.compute_score([[data.queries[q], data.doc_text(d)] for d in docs])
            )
            labels.append([int(data.qrels[q].get(d, 0) > 0) for d in docs])
        return logits, labels

    fit_logits, fit_labels = logits_labels(fit_ids)
    refit = Calibration.fit(sum(fit_logits, []), sum(fit_labels, []), "platt")
    assert (saved.a, saved.b) == pytest.approx((refit.a, refit.b), abs=1e-4)
    held_logits, held_labels = logits_labels(held_ids)
    flat, labels = sum(held_logits, []), sum(held_labels, [])
    measured = saved.report["measured"]
    assert measured["pairs"] == len(flat) and measured["relevant"] == sum(labels)
    assert measured["ece_before"] == pytest.approx(
        expected_calibration_error(sigmoid(flat), labels), abs=1e-5
    )
    assert measured["ece_after"] == pytest.approx(
        expected_calibration_error(saved.probabilities(flat), labels), abs=1e-5
    )
    assert f"{measured['ece_after']:.4f}" in out and f"{measured['brier_before']:.4f}" in out
    fit_probabilities = [saved.probabilities(q) for q in fit_logits]
    assert saved.suggested_threshold == pytest.approx(
        suggest_threshold(fit_probabilities, fit_labels), abs=1e-5
    )
    rows = {round(r["threshold"], 6): r for r in saved.report["thresholds"]}
    expected = threshold_table([saved.probabilities(q) for q in held_logits], held_labels, [0.5])[0]
    assert rows[0.5]["recall"] == pytest.approx(expected.recall)
    assert rows[0.5]["kept_per_query"] == pytest.approx(expected.kept_per_query)
    assert "suggested threshold: " in out and "max F1 on the calibration queries" in out


@cli_needs
def test_cli_measures_a_saved_calibration_and_writes_json(tiny_setup, tmp_path, capsys):
    data_dir, model_dir = tiny_setup
    target = tmp_path / "iso.json"
    args = ("--model", model_dir, "--split", "test", "--top-n", 5)
    assert _calibrate(data_dir, *args, "--method", "isotonic", "-o", target) == 0
    assert find_calibration(model_dir) is None and Calibration.load(target).method == "isotonic"
    capsys.readouterr()
    assert _calibrate(data_dir, *args, "--calibration", target, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["title"].startswith("tiny test: isotonic (iso.json, tiny test, 14 queries")
    assert report["measured"]["queries"] == 20 and report["measured"]["pairs"] == 100
    assert "saved" not in report  # measuring never overwrites the file
    assert [r["threshold"] for r in report["thresholds"]][:2] == [0.05, 0.1]


@cli_needs
@pytest.mark.parametrize(
    "extra, message",
    [
        (("--model", "runs/missing"), r"runs/missing.*no such directory .* hub"),
        (("--target-precision", "1.5"), "--target-precision must be in"),
        (("--held-out", "0"), "--held-out must be between 0 and 1"),
        (("--split", "dev"), r"dev.tsv does not exist \(splits here: \['test', 'train'\]\)"),
        (("--calibration", "missing.json"), "calibration file 'missing.json' does not exist"),
    ],
)
def test_cli_errors_name_the_argument(tiny_setup, capsys, extra, message):
    import re

    data_dir, model_dir = tiny_setup
    args = ["--model", model_dir, "--split", "train", *extra]
    assert _calibrate(data_dir, *args) == 2
    assert re.search(message, capsys.readouterr().err)
    assert find_calibration(model_dir) is None
