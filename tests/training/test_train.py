"""``crossrank.training.loop`` and ``crossrank train`` on a tiny model and a tiny BEIR dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")
pytest.importorskip("ir_measures")

import torch  # noqa: E402
from transformers import AutoConfig  # noqa: E402

from crossrank import Reranker  # noqa: E402
from crossrank.cli.commands import main  # noqa: E402
from crossrank.evaluation import BM25, load_beir  # noqa: E402
from crossrank.testing import save_model, write_tiny_beir  # noqa: E402
from crossrank.testing import tiny_train_config as _config  # noqa: E402
from crossrank.training.loop import _Examples, train  # noqa: E402


@pytest.fixture
def tiny_beir(tmp_path):
    return str(write_tiny_beir(tmp_path / "tiny"))


@pytest.fixture
def base_dir(tmp_path):
    # a 2-logit head on purpose: training must replace it with a 1-logit one
    return save_model(tmp_path / "base", "bert", num_labels=2, seed=3)


def test_training_lowers_the_loss_and_round_trips(tiny_beir, base_dir, tmp_path):
    out = tmp_path / "trained"
    result = train(_config(tiny_beir, base_dir, out, max_steps=60))
    assert result.steps == 60 and result.stopped_by == "schedule" and len(result.losses) == 60
    first, last = result.losses[:10], result.losses[-10:]
    # listwise loss over 1 positive + 3 negatives starts near ln 4 ≈ 1.39
    assert sum(last) / 10 < 0.6 * sum(first) / 10, (first, last)

    # saved: a standard 1-logit checkpoint whose scores in crossrank equal the trained model's
    assert AutoConfig.from_pretrained(out).num_labels == 1
    reranker = Reranker(str(out), max_length=32)
    data = load_beir(tiny_beir, "train")
    pairs = [[data.queries["q00"], data.doc_text(d)] for d in ("t0-r0", "t0-n1", "t5-r0")]
    batch = reranker.tokenizer(
        [p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        in_memory = result.model(**batch).logits[:, 0].tolist()
    assert reranker.compute_score(pairs) == pytest.approx(in_memory, abs=1e-5)

    log = json.loads((out / "training_log.json").read_text())
    assert log["steps"] == 60 and log["config"]["loss"] == "listwise"
    assert len(log["held_out_queries"]) == 4 and [e["step"] for e in log["evals"]] == [0, 60]


def test_same_seed_same_run_and_bce(tiny_beir, base_dir, tmp_path):
    runs = [
        train(_config(tiny_beir, base_dir, tmp_path / f"run{i}", max_steps=4, loss="bce", seed=7))
        for i in range(2)
    ]
    assert runs[0].losses == runs[1].losses
    other = train(_config(tiny_beir, base_dir, tmp_path / "other", max_steps=4, loss="bce", seed=8))
    assert other.losses != runs[0].losses


def test_negatives_are_hard_and_never_relevant(tiny_beir):
    config = _config(tiny_beir, "unused", "unused", negatives=3, negatives_depth=4)
    data = load_beir(tiny_beir, "train")
    queries = list(data.queries)
    run = BM25(data).search(data.queries, 6)
    examples = _Examples(data, queries, run, config)
    assert len(examples) == 40  # 20 queries × 2 positives
    for _ in range(30):
        for query_id, docs in examples.batch():
            positive, negatives = docs[0], docs[1:]
            assert data.qrels[query_id].get(positive) == 1
            assert len(set(negatives)) == 3
            assert not any(d in data.qrels[query_id] for d in negatives)
            assert set(negatives) <= set(run[query_id])  # mined from BM25, not random


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_time_budget_stops_the_run(tiny_beir, base_dir, tmp_path, clock):
    config = _config(tiny_beir, base_dir, tmp_path / clock, max_steps=10_000, eval_queries=0)
    config.time_budget_minutes, config.budget_clock = 0.02, clock  # 1.2 seconds
    result = train(config)
    assert result.stopped_by == "time_budget" and 0 < result.steps < 10_000
    assert result.seconds < 30 and 0 < result.cpu_seconds
    assert json.loads((tmp_path / clock / "training_log.json").read_text())["steps"] == result.steps


def test_eval_split_holds_out_another_split_and_trains_on_all_of_this_one(
    tiny_beir, base_dir, tmp_path
):
    qrels = tiny_beir + "/qrels"
    header, *rows = open(f"{qrels}/train.tsv", encoding="utf-8").read().splitlines()
    dev = {"q00", "q01", "q10", "q11"}
    with open(f"{qrels}/train.tsv", "w", encoding="utf-8") as stream:
        stream.write("\n".join([header] + [r for r in rows if r.split("\t")[0] not in dev]) + "\n")
    # q20 is judged in both: a training query is never a held-out one
    dev_rows = [r for r in rows if r.split("\t")[0] in dev | {"q20"}]
    with open(f"{qrels}/dev.tsv", "w", encoding="utf-8") as stream:
        stream.write("\n".join([header] + dev_rows) + "\n")

    held = train(_config(tiny_beir, base_dir, tmp_path / "dev", max_steps=6, eval_split="dev"))
    alone = train(_config(tiny_beir, base_dir, tmp_path / "none", max_steps=6, eval_queries=0))
    assert held.losses == alone.losses  # every train query trained, as with nothing held out
    log = json.loads((tmp_path / "dev" / "training_log.json").read_text())
    assert sorted(log["held_out_queries"]) == sorted(dev)
    assert [e["step"] for e in log["evals"]] == [0, 6] and log["config"]["eval_split"] == "dev"

    with pytest.raises(ValueError, match="eval_split='train' is the training split"):
        train(_config(tiny_beir, base_dir, tmp_path / "x", eval_split="train"))
    with pytest.raises(FileNotFoundError, match="nope.tsv does not exist"):
        train(_config(tiny_beir, base_dir, tmp_path / "y", eval_split="nope", max_steps=1))


def test_bad_configuration_is_named(tiny_beir, base_dir, tmp_path):
    with pytest.raises(ValueError, match="loss must be one of"):
        train(_config(tiny_beir, base_dir, tmp_path / "x", loss="hinge"))
    with pytest.raises(ValueError, match="negatives=60 but the corpus has only 48"):
        train(_config(tiny_beir, base_dir, tmp_path / "x", negatives=60, max_steps=1))
    with pytest.raises(ValueError, match="budget_clock must be one of"):
        train(_config(tiny_beir, base_dir, tmp_path / "x", budget_clock="sundial"))
    with pytest.raises(ValueError, match="queries_per_step must be >= 1"):
        train(_config(tiny_beir, base_dir, tmp_path / "x", queries_per_step=0))


def test_device_is_chosen_checked_and_logged(tiny_beir, base_dir, tmp_path):
    # "auto" on a machine without an accelerator trains on the CPU: the same run as "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    auto = train(_config(tiny_beir, base_dir, tmp_path / "auto", max_steps=4, device="auto"))
    cpu = train(_config(tiny_beir, base_dir, tmp_path / "cpu", max_steps=4, device="cpu"))
    assert next(cpu.model.parameters()).device.type == "cpu"
    assert json.loads((tmp_path / "cpu" / "training_log.json").read_text())["device"] == "cpu"
    logged = json.loads((tmp_path / "auto" / "training_log.json").read_text())
    assert logged["device"].startswith(expected) and logged["config"]["device"] == "auto"
    if expected == "cpu":
        assert auto.losses == cpu.losses and auto.evals == cpu.evals

    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="device='tpu' is not a device crossrank knows"):
        train(_config(tiny_beir, base_dir, out, max_steps=1, device="tpu"))
    assert not out.exists()  # refused before anything was written
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu'"):
        train(_config(tiny_beir, base_dir, out, max_steps=1, device=""))
    if not torch.cuda.is_available():
        with pytest.raises((ValueError, RuntimeError), match="(?i)cuda"):
            train(_config(tiny_beir, base_dir, out, max_steps=1, device="cuda"))
        assert not out.exists()


def test_freeze_layers_keeps_the_lower_blocks_and_trains_the_rest(tiny_beir, base_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(base_dir)
    result = train(
        _config(tiny_beir, base_dir, tmp_path / "frozen", max_steps=6, freeze_layers=1, keep="last")
    )
    trained = result.model.base_model
    start = base.base_model.state_dict()
    after = {k: v.cpu() for k, v in trained.state_dict().items()}
    same = lambda prefix: all(  # noqa: E731
        torch.equal(start[k], after[k]) for k in start if k.startswith(prefix)
    )
    changed = lambda prefix: any(  # noqa: E731
        not torch.equal(start[k], after[k]) for k in start if k.startswith(prefix)
    )
    assert same("embeddings.") and same("encoder.layer.0.")  # frozen: bit for bit the base
    assert changed("encoder.layer.1.")  # the block above still learns
    assert result.losses[-1] < result.losses[0]
    # the saved checkpoint is an ordinary one that scores like the trained model
    logged = json.loads((tmp_path / "frozen" / "training_log.json").read_text())
    assert logged["config"]["freeze_layers"] == 1

    with pytest.raises(ValueError, match="freeze_layers=2 would freeze every block.*at most 1"):
        train(_config(tiny_beir, base_dir, tmp_path / "all", max_steps=1, freeze_layers=2))
    assert not (tmp_path / "all").exists()  # refused before --output was touched
    # ... even with overwrite: the run already there is kept
    kept = sorted(p.name for p in (tmp_path / "frozen").iterdir())
    with pytest.raises(ValueError, match="would freeze every block"):
        train(
            _config(
                tiny_beir,
                base_dir,
                tmp_path / "frozen",
                max_steps=1,
                freeze_layers=5,
                overwrite=True,
            )
        )
    assert sorted(p.name for p in (tmp_path / "frozen").iterdir()) == kept
    with pytest.raises(ValueError, match="freeze_layers must be an int >= 0, got -1"):
        train(_config(tiny_beir, base_dir, tmp_path / "neg", max_steps=1, freeze_layers=-1))
    assert (
        main(
            [
                "train",
                tiny_beir,
                "--model",
                base_dir,
                "--output",
                str(tmp_path / "cli"),
                "--max-steps",
                "2",
                "--freeze-layers",
                "1",
                "--max-length",
                "32",
                "--eval-queries",
                "4",
                "--eval-every",
                "0",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "cli" / "training_log.json").read_text())["config"]["freeze_layers"]
        == 1
    )


def test_train_cli(tiny_beir, base_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", tiny_beir, "--model", base_dir, "--output", str(out), "--max-steps", "3"]
    args += ["--max-length", "32", "--negatives", "3", "--eval-queries", "4", "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["output"] == str(out)
    assert summary["held_out_nDCG@10"]["step"] == 3
    scores = Reranker(str(out), max_length=32).compute_score([["panda", "bamboo"], ["a", "b"]])
    assert len(scores) == 2
    with pytest.raises(SystemExit):
        main(["train", tiny_beir, "--model", base_dir, "-o", str(out), "--loss", "hinge"])
    assert "invalid choice: 'hinge'" in capsys.readouterr().err


def test_dropout_zero_turns_every_dropout_off_and_keeps_the_saved_config(
    tiny_beir, base_dir, tmp_path
):
    from transformers import AutoModelForSequenceClassification

    from crossrank.training.layers import set_dropout as _set_dropout

    model = AutoModelForSequenceClassification.from_pretrained(base_dir).train()
    ids = torch.randint(5, 90, (4, 24))

    def logits():
        with torch.no_grad():
            return model(input_ids=ids).logits

    torch.manual_seed(0)
    assert not torch.equal(logits(), logits())  # the base trains with dropout on
    assert _set_dropout(model, None) == 0 and not torch.equal(logits(), logits())
    assert _set_dropout(model, 0.0) > 0
    first = logits()
    assert torch.equal(first, logits())  # no random masks left, attention included
    model.eval()
    assert torch.allclose(first, logits(), atol=1e-6)  # training mode now computes what eval does

    base_config = json.loads((Path(base_dir) / "config.json").read_text())
    assert base_config["hidden_dropout_prob"] > 0
    result = train(_config(tiny_beir, base_dir, tmp_path / "nodrop", max_steps=4, dropout=0.0))
    assert all(m.p == 0.0 for m in result.model.modules() if isinstance(m, torch.nn.Dropout))
    saved = json.loads((tmp_path / "nodrop" / "config.json").read_text())
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        assert saved[key] == base_config[key]  # the checkpoint stays a standard one
    logged = json.loads((tmp_path / "nodrop" / "training_log.json").read_text())
    assert logged["config"]["dropout"] == 0.0
    for bad in (1.0, -0.1, True, "0"):
        with pytest.raises(ValueError, match="dropout must be a probability in \\[0, 1\\)"):
            train(_config(tiny_beir, base_dir, tmp_path / "bad", max_steps=1, dropout=bad))
    assert not (tmp_path / "bad").exists()
    args = ["train", tiny_beir, "--model", base_dir, "--output", str(tmp_path / "cli")]
    args += ["--max-steps", "1", "--max-length", "32", "--eval-every", "0", "--no-progress"]
    assert main(args + ["--dropout", "0"]) == 0
    logged = json.loads((tmp_path / "cli" / "training_log.json").read_text())
    assert logged["config"]["dropout"] == 0.0


def test_bf16_trains_under_autocast_and_saves_float32(tiny_beir, base_dir, tmp_path, recwarn):
    # dropout 0: the two runs differ only by the precision of forward and backward
    full = train(_config(tiny_beir, base_dir, tmp_path / "fp32", max_steps=30, dropout=0.0))
    half = train(
        _config(tiny_beir, base_dir, tmp_path / "bf16", max_steps=30, dropout=0.0, bf16=True)
    )
    # bfloat16 rounding shows from the first step on, but it is the same training
    assert half.losses[0] != full.losses[0]
    assert half.losses[0] == pytest.approx(full.losses[0], abs=0.05)
    assert sum(half.losses[-10:]) / 10 < 0.6 * sum(half.losses[:10]) / 10, half.losses
    # master weights, optimizer and checkpoint stay float32: a standard checkpoint
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    saved = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) in (None, "float32")
    reranker = Reranker(str(tmp_path / "bf16"), max_length=32)
    assert next(reranker.model.parameters()).dtype == torch.float32
    logged = json.loads((tmp_path / "bf16" / "training_log.json").read_text())
    assert logged["config"]["bf16"] is True
    with pytest.raises(ValueError, match="bf16 must be True or False"):
        train(_config(tiny_beir, base_dir, tmp_path / "bad", max_steps=1, bf16="yes"))
    assert not (tmp_path / "bad").exists()
    args = ["train", tiny_beir, "--model", base_dir, "--output", str(tmp_path / "cli")]
    args += ["--max-steps", "1", "--max-length", "32", "--eval-every", "0", "--no-progress"]
    assert main(args + ["--bf16"]) == 0
    logged = json.loads((tmp_path / "cli" / "training_log.json").read_text())
    assert logged["config"]["bf16"] is True


def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(
    tiny_beir, base_dir, tmp_path, monkeypatch
):
    import crossrank.devices
    from crossrank.errors import CrossrankWarning, reset_notes

    reset_notes()
    monkeypatch.setattr(crossrank.devices, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(CrossrankWarning, match="without bfloat16 instructions.*without --bf16"):
        train(_config(tiny_beir, base_dir, tmp_path / "slow", max_steps=1, bf16=True, device="cpu"))
