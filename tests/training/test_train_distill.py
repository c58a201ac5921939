"""``crossrank train --teacher``: distillation from a reranker's raw scores (tiny random models)."""

from __future__ import annotations

import itertools
import math

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

import torch  # noqa: E402

from crossrank import Reranker  # noqa: E402
from crossrank.errors import ArgumentError, ModelLoadError  # noqa: E402
from crossrank.evaluation import BM25, load_beir  # noqa: E402
from crossrank.testing import save_model, write_tiny_beir  # noqa: E402
from crossrank.testing import tiny_train_config as _config  # noqa: E402
from crossrank.training.config import TrainConfig  # noqa: E402
from crossrank.training.distillation import distillation_loss  # noqa: E402
from crossrank.training.loop import train  # noqa: E402


@pytest.fixture
def tiny_beir(tmp_path):
    return str(write_tiny_beir(tmp_path / "tiny"))


@pytest.fixture
def base_dir(tmp_path):  # a 1-logit head: the student before training is this model
    return save_model(tmp_path / "base", "bert", seed=3)


@pytest.fixture
def teacher_dir(tmp_path, base_dir):
    """The base with its head times -3: it orders every list exactly against the student."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(base_dir)
    with torch.no_grad():
        model.classifier.weight.mul_(-3.0)
        model.classifier.bias.mul_(-3.0)
    model.save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp_path / "teacher")
    return str(tmp_path / "teacher")


def test_distillation_loss_values():
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, -1.0]])
    # a student that differs by a constant per group ranks and separates exactly like the teacher
    shifted = teacher + torch.tensor([[5.0], [-2.0]])
    assert distillation_loss(shifted, teacher, "kl").item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(shifted, teacher, "margin-mse").item() == pytest.approx(0.0, abs=1e-6)

    student = torch.zeros(2, 3)
    for t in (1.0, 2.0):
        expected = 0.0
        for row in teacher:
            p = torch.softmax(row / t, 0)
            expected += sum(pi * math.log(pi * 3) for pi in p.tolist()) * t * t
        loss = distillation_loss(student, teacher, "kl", temperature=t)
        assert loss.item() == pytest.approx(expected / 2, rel=1e-5)  # mean over groups
    # margins positive - negative: student (0, 0) vs teacher (2, 3) and (-2, 1)
    assert distillation_loss(student, teacher, "margin-mse").item() == pytest.approx(18 / 4)
    with pytest.raises(ValueError, match="distill_loss must be"):
        distillation_loss(student, teacher, "mse")


def _groups(data_dir):
    data = load_beir(data_dir, "train")
    run = BM25(data).search(data.queries, 6)
    return [(data.queries[q], [data.doc_text(d) for d in docs]) for q, docs in run.items()]


def _scores(path, groups):
    reranker = Reranker(str(path), max_length=32)
    return [torch.tensor(reranker.compute_score([(q, d) for d in docs])) for q, docs in groups]


def _kl(student, teacher):
    """Mean per query of KL(softmax(teacher) || softmax(student))."""
    total = 0.0
    for s, t in zip(student, teacher):
        p = torch.softmax(t, 0)
        total += (p * (p.log() - torch.log_softmax(s, 0))).sum().item()
    return total / len(teacher)


def _margin_error(student, teacher):
    """Mean squared difference of all within-query score differences."""
    errors = [
        ((s[i] - s[j]) - (t[i] - t[j])).item() ** 2
        for s, t in zip(student, teacher)
        for i, j in itertools.combinations(range(len(t)), 2)
    ]
    return sum(errors) / len(errors)


def _agreement(student, teacher):
    """Share of within-query document pairs the student orders like the teacher."""
    same = [
        bool((s[i] - s[j]) * (t[i] - t[j]) > 0)
        for s, t in zip(student, teacher)
        for i, j in itertools.combinations(range(len(t)), 2)
    ]
    return sum(same) / len(same)


def test_distillation_moves_the_student_towards_the_teacher(
    tiny_beir, base_dir, teacher_dir, tmp_path
):
    groups = _groups(tiny_beir)
    teacher, before = _scores(teacher_dir, groups), _scores(base_dir, groups)
    assert _agreement(before, teacher) == 0.0  # the student starts out ordering against it
    common = dict(max_steps=20, eval_queries=0, learning_rate=5e-3, teacher=teacher_dir)
    kl = train(_config(tiny_beir, base_dir, tmp_path / "kl", **common))
    after_kl = _scores(tmp_path / "kl", groups)
    assert _kl(after_kl, teacher) < 0.7 * _kl(before, teacher), (_kl(before, teacher), kl.losses)
    assert _agreement(after_kl, teacher) > 0.4

    train(_config(tiny_beir, base_dir, tmp_path / "mse", distill_loss="margin-mse", **common))
    after_mse = _scores(tmp_path / "mse", groups)
    assert _margin_error(after_mse, teacher) < 0.7 * _margin_error(before, teacher)
    assert _agreement(after_mse, teacher) > 0.4

    # the mix: the first step sees the same weights and batch, so its loss is the weighted sum
    one = dict(common, max_steps=1)
    labels = train(_config(tiny_beir, base_dir, tmp_path / "labels", distill_weight=0.0, **one))
    mixed = train(_config(tiny_beir, base_dir, tmp_path / "mixed", distill_weight=0.25, **one))
    expected = 0.75 * labels.losses[0] + 0.25 * kl.losses[0]
    assert mixed.losses[0] == pytest.approx(expected, abs=1e-6)
    assert labels.losses[0] != pytest.approx(kl.losses[0], abs=1e-3)  # the two parts differ


@pytest.mark.parametrize(
    "setting, message",
    [
        (dict(distill_loss="mse"), "distill_loss must be one of ('kl', 'margin-mse'), got 'mse'"),
        (dict(distill_weight=-0.1), r"distill_weight must be in \[0, 1\], got -0.1"),
        (dict(distill_temperature=0.0), "distill_temperature must be > 0, got 0.0"),
        (dict(teacher=""), "teacher must be a model path or hub id, got ''"),
        (dict(keep="first"), "keep must be one of ('best', 'last'), got 'first'"),
        (dict(select_metric="bm25"), "select_metric must be one of ('model', 'fused')"),
        (dict(early_stopping_patience=0), "early_stopping_patience must be an int >= 1 or None"),
        (dict(early_stopping_patience=2.5), "early_stopping_patience must be an int >= 1"),
        (dict(early_stopping_patience=2, eval_every=0), "needs held-out evaluations"),
        (dict(early_stopping_patience=2, eval_queries=0), "needs held-out evaluations"),
        (dict(early_stopping_min_delta=-0.01), "early_stopping_min_delta must be >= 0"),
    ],
)
def test_bad_settings_are_named(setting, message):
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig("model", "data", "out", **setting).check()


def test_a_teacher_that_does_not_load_leaves_the_output_alone(tiny_beir, base_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    missing = str(tmp_path / "no-such-teacher")
    with pytest.raises(ModelLoadError, match="no-such-teacher"):
        train(_config(tiny_beir, base_dir, out, max_steps=1, teacher=missing, overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_bm25_as_the_teacher_pulls_the_student_towards_bm25s_order(tiny_beir, base_dir, tmp_path):
    from crossrank.training.distillation import BM25Teacher

    data = load_beir(tiny_beir, "train")
    bm25 = BM25(data)
    run = bm25.search(data.queries, 6)
    for query_id, hits in run.items():  # score() gives the very scores search() ranks by
        ids = list(hits)
        assert bm25.score(data.queries[query_id], ids) == pytest.approx(list(hits.values()))
    assert bm25.score("zzzz qqqq", ids) == [0.0] * len(ids)  # no shared term: 0, as in search
    assert bm25.score("", ids) == [0.0] * len(ids)

    config = TrainConfig("m", tiny_beir, "out", teacher="bm25")
    groups = [(q, list(hits)) for q, hits in run.items() if len(hits) > 2]
    targets = BM25Teacher(config, bm25).logits(groups, data)
    for row, (q, docs) in zip(targets, groups):
        assert row.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert row.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
        raw = list(run[q].values())  # standardizing keeps BM25's order
        assert sorted(range(len(docs)), key=lambda i: -row[i]) == sorted(
            range(len(docs)), key=lambda i: -raw[i]
        )

    texts = [(data.queries[q], [data.doc_text(d) for d in docs]) for q, docs in groups]
    before = _scores(base_dir, texts)
    common = dict(max_steps=20, eval_queries=0, learning_rate=5e-3, teacher="bm25")
    trained = train(_config(tiny_beir, base_dir, tmp_path / "bm25", **common))
    after = _scores(tmp_path / "bm25", texts)
    assert _kl(after, targets) < 0.7 * _kl(before, targets), trained.losses
    assert _agreement(after, targets) > _agreement(before, targets)
