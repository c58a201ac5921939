"""The maintained benchmarks start, write a result the docs can read, and the stored results hold.

A benchmark runs tiny here (a random model from ``crossrank.testing``, ``--synthetic`` word lists,
no data): this proves it runs and writes valid JSON, not how fast anything is.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAINTAINED = (
    "throughput",
    "contenders",
    "rag_latency",
    "serve_load",
    "rank_many",
    "memory",
    "ray_scale",
    "quality",
    "int8_quality",
    "check_checkpoint_peers",
    "gpu_check",
    "gpu_real_set",
    "soak",
    "adapt",
    "fusion_weight",
)


@pytest.fixture
def benchmarks(monkeypatch):
    """The ``benchmarks`` package, importable as from the repository root."""
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.common

    return benchmarks


def test_rank_many_writes_a_result_that_load_results_accepts(benchmarks, bert_dir, tmp_path):
    from benchmarks import rank_many

    argv = ["--model", bert_dir, "--synthetic", "--queries", "2", "--docs", "3", "--repeat", "1"]
    argv += ["--max-length", "128"]  # the tiny model's own limit
    rank_many.main([*argv, "--output", str(tmp_path / "rank_many.json")])

    [record] = benchmarks.common.load_results(tmp_path)
    assert record["file"] == "rank_many.json"
    assert record["benchmark"] == "rank_many"
    assert record["source"] == "measured"
    assert record["command"].startswith("python -m benchmarks.rank_many --model ")
    assert record["settings"]["pairs"] == 6
    assert record["machine"]["logical_cpus"] == os.cpu_count()
    assert {"python", "torch", "transformers", "crossrank"} <= set(record["versions"])
    rows = {row["call"]: row for row in record["figures"]["rows"]}
    assert set(rows) == {"rank x N", "rank_many"}
    assert rows["rank x N"]["forward_passes"] == 2  # one per query
    assert rows["rank_many"]["forward_passes"] == 1  # both queries share one batch
    assert record["figures"]["same_order"] is True


def test_adapt_runs_each_seed_in_its_own_process_and_reports_the_spread(
    benchmarks, bert_dir, tmp_path
):
    from crossrank.testing import write_titled_corpus

    data = write_titled_corpus(tmp_path / "corpus", labelled=True)
    output = tmp_path / "adapt.json"
    command = [sys.executable, "-m", "benchmarks.adapt", "--data", str(data), "--model", bert_dir]
    command += ["--seeds", "1", "2", "--budget-minutes", "2", "--runs", str(tmp_path / "runs")]
    done = subprocess.run(
        command + ["--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(output.read_text())["figures"]
    assert [row["seed"] for row in figures["rows"]] == [1, 2]
    for row in figures["rows"]:
        summary = json.loads(
            (tmp_path / "runs" / f"corpus-seed{row['seed']}" / "adapt.json").read_text()
        )
        assert row["rerank nDCG@10"] == summary["evaluation"]["results"]["rerank"]["nDCG@10"]
        assert row["cpu_minutes"] == summary["cpu_minutes"] <= 2
    alone = [row["rerank nDCG@10"] for row in figures["rows"]]
    spread = {line["system"]: line for line in figures["over_seeds"]}["rerank"]
    assert spread["min"] == round(min(alone), 4) and spread["max"] == round(max(alone), 4)
    assert spread["spread"] == round(max(alone) - min(alone), 4)


def test_fusion_weight_scores_once_and_fuses_at_every_weight(benchmarks, bert_dir, tmp_path):
    from benchmarks import fusion_weight
    from crossrank import Reranker
    from crossrank.evaluation import evaluate
    from crossrank.testing import write_titled_corpus

    data = write_titled_corpus(tmp_path / "corpus", labelled=True)
    argv = ["--data", str(data), "--models", bert_dir, "--chosen", "0.6"]
    argv += ["--cache", str(tmp_path / "cache")]
    fusion_weight.main([*argv, "--output", str(tmp_path / "first.json")])
    [cached] = (tmp_path / "cache").iterdir()
    stamp = cached.stat().st_mtime_ns
    fusion_weight.main([*argv, "--output", str(tmp_path / "second.json")])
    assert cached.stat().st_mtime_ns == stamp  # the second run read the scores, scored nothing

    first, second = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    assert first["figures"]["rows"] == second["figures"]["rows"]
    [row] = first["figures"]["rows"]
    assert [k for k in row if k.startswith("minmax@")] == [
        f"minmax@{w:g}" for w in fusion_weight.WEIGHTS
    ]
    report = evaluate(
        str(data), Reranker(bert_dir, max_length=128), fuse_weight=0.6, show_progress=False
    )
    assert row["minmax@0"] == round(report.results["rerank"]["nDCG@10"], 4)
    assert row["minmax@1"] == round(report.results["bm25"]["nDCG@10"], 4)
    assert row["minmax@0.6"] == round(report.results["fused@0.6"]["nDCG@10"], 4)
    best = first["figures"]["best_weight"]
    assert 0 < best < 1 and row[f"minmax@{best:g}"] == max(
        row[f"minmax@{w:g}"] for w in fusion_weight.WEIGHTS[1:-1]
    )
    assert first["figures"]["chosen_weight"] == 0.6


def test_load_results_names_the_file_and_the_missing_key(benchmarks, tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(_record()))
    broken = _record()
    del broken["date"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"broken\.json: missing 'date'"):
        benchmarks.common.load_results(tmp_path)


def test_load_results_wants_one_newest_record_per_series(benchmarks, tmp_path):
    for name in ("a", "b"):
        record = {**_record(), "series": "one thing", "newest": True}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="series 'one thing' has 2 newest records"):
        benchmarks.common.load_results(tmp_path)
    (tmp_path / "a.json").write_text(
        json.dumps({**_record(), "series": "one thing", "newest": False})
    )
    assert [r["file"] for r in benchmarks.common.load_results(tmp_path)] == ["a.json", "b.json"]


def test_write_result_refuses_figures_without_a_table(benchmarks, tmp_path):
    with pytest.raises(ValueError, match="figures has no table"):
        benchmarks.common.write_result("demo", "nothing", {}, {"pairs_per_s": 1.0}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_stored_results_are_valid_and_results_md_names_only_stored_files(benchmarks):
    records = benchmarks.common.load_results()
    assert len(records) >= 40
    stored = {record["file"] for record in records}
    named = set(re.findall(r"`([\w.-]+\.json)`", (ROOT / "benchmarks" / "RESULTS.md").read_text()))
    assert named <= stored, named - stored


def test_soak_capacity_counts_a_growing_backlog_as_not_keeping_up(benchmarks):
    from benchmarks.soak import KEEP_UP, achieved_rate

    # 300 requests offered over 30 s, each answered after ~0.5 s: the server kept up
    kept_up = achieved_rate(300, 30.0 + 0.5, [0.4, 0.5, 0.6])
    assert kept_up == pytest.approx(10.0, rel=0.01)
    # the same 300 at a server that sustains 8/s: a 7.5 s backlog drains after the last send
    behind = achieved_rate(300, 37.5 + 0.5, [0.4, 0.5, 6.0])
    assert behind == pytest.approx(8.0, rel=0.01) and behind < KEEP_UP * 10.0


def test_no_benchmark_edits_sys_path():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "benchmarks").rglob("*.py")
        if "sys.path" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_decoder_llm_references_are_compared_with_and_run_in_their_venvs(benchmarks, tmp_path):
    from benchmarks import throughput
    from benchmarks.llm_contenders import LLM_CONTENDERS, crossrank_options
    from benchmarks.workload import MODEL_NAMES

    for name in LLM_CONTENDERS:
        assert name in throughput.REFERENCES and name in throughput.LABELS
        assert (name in throughput.TF4) != (name in throughput.TF446)  # one venv each
    assert {"mxbai", "mxbai-tiny", "layerwise-tiny", "lightweight"} <= set(MODEL_NAMES)
    for model_type, architecture, options in [
        ("qwen2", "Qwen2ForCausalLM", {"prompt_format": "mxbai"}),
        ("qwen2", "Qwen2ForSequenceClassification", {}),
        ("qwen3", "Qwen3ForCausalLM", {}),  # crossrank tells the Qwen3-Reranker prompt itself
    ]:
        config = {"model_type": model_type, "architectures": [architecture]}
        (tmp_path / "config.json").write_text(json.dumps(config))
        assert crossrank_options(str(tmp_path)) == options


@pytest.mark.slow
def test_throughput_runs_a_contender_in_its_own_process(bert_dir, tmp_path):
    output = tmp_path / "throughput.json"
    command = [sys.executable, "-m", "benchmarks.throughput", "--model", bert_dir, "--synthetic"]
    command += ["--pairs", "4", "--contenders", "crossrank-torch", "--output", str(output)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = json.loads(output.read_text())["figures"]["rows"]
    assert row["contender"] == "crossrank-torch" and "error" not in row
    assert row["pairs"] == 4 and row["pairs_per_s"] > 0


@pytest.mark.slow
def test_gpu_check_smoke_measures_throughput_mfu_and_a_profile_on_a_cpu(tmp_path):
    output = tmp_path / "gpu_check.json"
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--smoke"]
    done = subprocess.run(
        command + ["--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(output.read_text())["figures"]
    ours = [row for row in figures["throughput"] if row.get("contender") == "crossrank"]
    assert [row["model"].split()[0] for row in ours] == [
        "MiniLM-L6-sized", "bge-reranker-base-sized", "Qwen3-Reranker-0.6B-sized"
    ]  # fmt: skip
    assert all(row["pairs_per_s"] > 0 and 0 < row["mfu_matmul"] for row in ours)
    assert {row["model"] for row in figures["profile"]} == {row["model"] for row in ours}
    assert all(row["forward_s"] > 0 and row["tokenize_s"] > 0 for row in figures["profile"])
    assert "Profile, MiniLM-L6-sized" in done.stdout


@pytest.mark.parametrize("name", MAINTAINED)
def test_every_maintained_benchmark_parses_its_options(benchmarks, name, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert "--output" in capsys.readouterr().out or name in ("contenders", "gpu_real_set")


def _record() -> dict:
    return {
        "schema": "crossrank-benchmark/1",
        "benchmark": "demo",
        "title": "a demo",
        "command": "python -m benchmarks.demo",
        "date": "2026-12-06T00:00:00Z",
        "machine": {"cpu": "x", "cpu_flags": [], "logical_cpus": 2, "memory_gib": 1.0, "gpu": None},
        "versions": {"python": "3.11"},
        "settings": {},
        "figures": {"rows": [{"x": 1}]},
        "source": "measured",
    }
