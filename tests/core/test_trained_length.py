"""A ``crossrank train`` checkpoint is scored at the max_length it was trained at by default."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from crossrank import Reranker
from crossrank.cli.commands import _build_parser, main
from crossrank.errors import CrossrankWarning
from crossrank.loading import RUN_FILE, trained_max_length
from crossrank.settings import Settings
from crossrank.sharing import resolve_reranker
from crossrank.testing import save_model, write_tiny_beir

TRAINED = 24
QUERY = "what does the giant panda eat"
# Passages far longer than 24 tokens, so the length they are cut to changes their scores.
DOCS = [
    " ".join(["the giant panda eats bamboo in china"] * 4 + [tail])
    for tail in ("and rain", "near a river", "with a black cat", "on the blue sky")
]
PAIRS = [(QUERY, doc) for doc in DOCS]


def _write_run(directory, content) -> str:
    path = directory / RUN_FILE
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("plain") / "model", "bert", seed=5)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained") / "model"
    save_model(root, "bert", seed=5)
    _write_run(root, {"config": {"max_length": TRAINED, "loss": "listwise", "seed": 42}})
    return str(root)


def test_the_trained_length_is_the_default(trained_dir):
    reranker = Reranker(trained_dir, device="cpu")
    assert reranker.max_length == TRAINED == reranker.settings.max_length
    assert reranker.info()["max_length"] == TRAINED and f"max_length={TRAINED})" in repr(reranker)
    assert Settings.create(trained_dir, device="cpu").max_length == TRAINED
    scores = reranker.compute_score(PAIRS)
    explicit = Reranker(trained_dir, device="cpu", max_length=TRAINED).compute_score(PAIRS)
    assert scores == pytest.approx(explicit, abs=1e-6)
    longer = Reranker(trained_dir, device="cpu", max_length=64).compute_score(PAIRS)
    assert all(abs(a - b) > 1e-4 for a, b in zip(scores, longer)), (scores, longer)


def test_an_explicit_max_length_wins(trained_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossrankWarning)  # nothing to note
        assert Reranker(trained_dir, device="cpu", max_length=64).max_length == 64
    assert Reranker(trained_dir, device="cpu", max_length=1000).max_length == 128  # still capped
    assert resolve_reranker(trained_dir, device="cpu", max_length=48).max_length == 48
    assert resolve_reranker(trained_dir, device="cpu", max_length=None).max_length == TRAINED


def test_without_a_run_file_the_default_is_512_capped_as_before(plain_dir):
    assert trained_max_length(plain_dir) is None
    assert trained_max_length("BAAI/bge-reranker-base") is None  # a hub id: nothing to read
    before = Reranker(plain_dir, device="cpu", max_length=512).max_length
    assert before == 128  # the tiny model's 128 positions cap the old default of 512
    assert Reranker(plain_dir, device="cpu").max_length == before


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"config": {"max_length": 2', "cannot be read"),
        ({"config": {"loss": "bce"}}, "has no config.max_length"),
        ({"config": {"max_length": "24"}}, r"has no config.max_length .*'24'"),
        ({"config": {"max_length": 8}}, "has no config.max_length int >= 16"),
        ([1, 2], "has no config.max_length"),
    ],
)
def test_a_bad_run_file_warns_once_and_uses_512(tmp_path, content, problem):
    model = save_model(tmp_path / "model", "bert", seed=5)
    path = _write_run(tmp_path / "model", content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lengths = [Reranker(model, device="cpu").max_length for _ in range(2)]
    assert lengths == [Reranker(model, device="cpu", max_length=512).max_length] * 2 == [128, 128]
    notes = [str(w.message) for w in caught if issubclass(w.category, CrossrankWarning)]
    about_file = [note for note in notes if path in note]
    assert len(about_file) == 1, notes
    assert "using max_length=512" in about_file[0]
    assert re.search(problem, about_file[0]), about_file[0]


def test_the_cli_scores_at_the_trained_length(trained_dir, tmp_path, capsys):
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n")
    assert (
        main(["rank", "--model", trained_dir, "--device", "cpu", "-q", QUERY, "--raw", str(docs)])
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    got = {row["index"]: row["score"] for row in rows}
    trained = Reranker(trained_dir, device="cpu", max_length=TRAINED).compute_score(PAIRS)
    longer = Reranker(trained_dir, device="cpu", max_length=64).compute_score(PAIRS)
    assert [got[i] for i in range(len(DOCS))] == pytest.approx(trained, abs=1e-5)
    assert all(abs(got[i] - longer[i]) > 1e-4 for i in range(len(DOCS)))
    parser = _build_parser()
    for command in (["rank", "-q", "x", "f"], ["eval", "data"], ["serve"]):
        assert parser.parse_args(command).max_length is None  # resolved when the model loads


def test_crossrank_train_writes_a_checkpoint_that_remembers_its_length(tmp_path, capsys):
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    pytest.importorskip("ir_measures")
    from crossrank.training.state import MARKER

    data = str(write_tiny_beir(tmp_path / "tiny"))
    base = save_model(tmp_path / "base", "bert", seed=3)
    out = tmp_path / "trained"
    args = ["train", data, "--model", base, "--output", str(out), "--max-steps", "2"]
    args += ["--max-length", str(TRAINED), "--negatives", "3", "--eval-queries", "0"]
    assert main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    assert (out / MARKER).is_file() and MARKER == RUN_FILE
    assert trained_max_length(out) == TRAINED
    assert Reranker(str(out), device="cpu").max_length == TRAINED
    assert Reranker(str(out), device="cpu", max_length=64).max_length == 64
