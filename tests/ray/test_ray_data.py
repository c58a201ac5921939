"""crossrank.ray.rerank_dataset and `crossrank rerank-table` on a local Ray (2 CPUs, small store)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'crossrank[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install 'crossrank[ray]'")
pa = pytest.importorskip("pyarrow", reason="pyarrow is missing: pip install 'crossrank[ray]'")

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from crossrank import Reranker  # noqa: E402
from crossrank.cli.commands import main  # noqa: E402
from crossrank.ray import rerank_dataset  # noqa: E402
from crossrank.testing import WORDS, build_model  # noqa: E402

MAX_LENGTH = 128
OPTIONS = {"max_length": MAX_LENGTH, "device": "cpu"}
# Crashes are injected from outside the library: tests/ray_faults/sitecustomize.py, put on the
# PYTHONPATH of Ray's workers, wraps the scoring actor so that its process exits on a block.
FAULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_faults")
POISON_TEXT = "crossrank test: this row crashes the actor"


def fault_env(tmp_path, once: bool) -> tuple:
    """Environment variables that make Ray workers crash (see FAULTS_DIR), and the crash log.

    ``once``: the first block of the job crashes its actor; else every block holding POISON_TEXT.
    The log gets the pid of each process that died.
    """
    log, config = tmp_path / "crashes", tmp_path / "fault.json"
    config.write_text(json.dumps({"log": str(log), "once": once, "poison": POISON_TEXT}))
    paths = os.pathsep.join(filter(None, [FAULTS_DIR, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": paths, "CROSSRANK_TEST_FAULT": str(config)}, log


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) is not running either
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def crashed_pids(log) -> list:
    """The pids the crash log names, each checked to be a process that no longer runs."""
    pids = [int(line) for line in log.read_text().split()]
    assert not [pid for pid in pids if running(pid)]
    return pids


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray for the module: the machine is shared, so 2 CPUs and a 200 MB store."""
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    # a stuck job (e.g. a step waiting for CPUs that the actors hold) fails in minutes, not 30
    context = ray.data.DataContext.get_current()
    saved = context.execution_no_progress_timeout_s
    context.execution_no_progress_timeout_s = 300
    yield
    context.execution_no_progress_timeout_s = saved
    ray.shutdown()


def make_rows(queries: int, per_query: int, seed: int = 0) -> list:
    """``queries`` x ``per_query`` (query, passage) rows of varied length, ids in input order."""
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        query = f"q{q} " + " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
        for _ in range(per_query):
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 60)))
            rows.append({"qid": f"q{q}", "query": query, "text": text, "n": len(rows)})
    return rows


@pytest.fixture(scope="module")
def rows():
    return make_rows(50, 24)  # 1,200 pairs


@pytest.fixture(scope="module")
def in_process(bert_dir, rows):
    """Scores of the same pairs from one Reranker in this process: the reference."""
    reranker = Reranker(bert_dir, **OPTIONS)
    return reranker, reranker.compute_score([[r["query"], r["text"]] for r in rows], normalize=True)


def test_scores_and_row_order_equal_in_process(local_ray, bert_dir, rows, in_process):
    ds = ray.data.from_items(rows, override_num_blocks=8)
    out = rerank_dataset(ds, model=bert_dir, num_actors=2, batch_size=100, reranker_kwargs=OPTIONS)
    result = out.take_all()
    assert not ds.context.execution_options.preserve_order  # the caller's dataset is untouched
    assert [r["n"] for r in result] == list(range(len(rows)))  # every row once, in input order
    assert [(r["qid"], r["query"], r["text"]) for r in result] == [
        (r["qid"], r["query"], r["text"]) for r in rows
    ]
    _, expected = in_process
    assert max(abs(r["score"] - e) for r, e in zip(result, expected)) <= 1e-5


def by_group(out) -> dict:
    groups = {}
    for row in out:
        groups.setdefault(row["qid"], []).append(row)
    return groups


def test_per_query_selection_equals_rank(local_ray, bert_dir, rows, in_process):
    """top_k, threshold and min_keep per group, as Reranker.rank applies them."""
    reranker, expected = in_process
    threshold = sorted(expected)[int(0.9 * len(expected))]  # a few rows of a query pass it
    choice = {"top_k": 3, "threshold": threshold, "min_keep": 2}
    ds = ray.data.from_items(rows, override_num_blocks=6)
    out = rerank_dataset(
        ds,
        model=bert_dir,
        num_actors=2,
        batch_size=128,
        reranker_kwargs=OPTIONS,
        group_column="qid",
        **choice,
    ).take_all()
    groups = by_group(out)
    assert len(groups) == 50
    assert {len(kept) for kept in groups.values()} == {2, 3}  # min_keep and top_k both bite
    for qid, kept in groups.items():
        group = [r for r in rows if r["qid"] == qid]
        hits = reranker.rank(group[0]["query"], [r["text"] for r in group], **choice)
        assert [r["n"] for r in kept] == [group[h.index]["n"] for h in hits]
        assert [r["rank"] for r in kept] == list(range(1, len(hits) + 1))
        assert max(abs(r["score"] - h.score) for r, h in zip(kept, hits)) <= 1e-5


@pytest.fixture(scope="module")
def saturated_dir(tmp_path_factory):
    """The tiny BERT with 60 added to its logit: every normalized score is 1.0, logits differ."""
    tokenizer, model = build_model("bert")
    with torch.no_grad():
        model.classifier.bias += 60.0
    path = tmp_path_factory.mktemp("saturated")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_ties_are_broken_like_rank(local_ray, saturated_dir):
    """Equal scores follow the raw logit, then input order (exact duplicates), as in rank."""
    rows = make_rows(4, 12, seed=3)
    for start in range(0, len(rows), 12):  # each query: its first 3 texts again at its end
        for offset in range(3):
            rows[start + 9 + offset]["text"] = rows[start + offset]["text"]
    reranker = Reranker(saturated_dir, **OPTIONS)
    # One block per query, so the actor scores the very pairs rank does: identical logits
    ds = ray.data.from_items(rows, override_num_blocks=4)
    out = rerank_dataset(
        ds, model=saturated_dir, batch_size=12, reranker_kwargs=OPTIONS, group_column="qid"
    ).take_all()
    groups = by_group(out)
    assert len(groups) == 4
    for qid, ranked in groups.items():
        group = [r for r in rows if r["qid"] == qid]
        hits = reranker.rank(group[0]["query"], [r["text"] for r in group])
        assert {h.score for h in hits} == {1.0}  # every score ties ...
        assert [h.index for h in hits] != list(range(12))  # ... and input order alone differs
        assert [r["n"] for r in ranked] == [group[h.index]["n"] for h in hits]
        assert [r["rank"] for r in ranked] == list(range(1, 13))


def test_upstream_steps_run_when_the_actors_fill_the_cluster(local_ray, bert_dir, rows, in_process):
    """Read/map steps before the actors, and the ranking after, with actors holding every CPU.

    A map step that Ray cannot fuse into the actors waits for a CPU they hold until the end:
    rerank_dataset must pass no option that stops that fusion.
    """
    ds = ray.data.from_items(rows, override_num_blocks=6).map(lambda row: {**row, "m": row["n"]})
    out = rerank_dataset(
        ds, model=bert_dir, num_actors=2, batch_size=200, reranker_kwargs=OPTIONS, top_k=1
    ).take_all()
    _, expected = in_process
    best = {}
    for row, score in zip(rows, expected):
        if row["qid"] not in best or score > best[row["qid"]][1]:
            best[row["qid"]] = (row["n"], score)
    assert sorted((r["m"], r["rank"]) for r in out) == sorted((n, 1) for n, _ in best.values())


def test_dead_actor_is_restarted_and_its_block_retried(
    local_ray, bert_dir, rows, in_process, tmp_path
):
    env, crashes = fault_env(tmp_path, once=True)
    ds = ray.data.from_items(rows, override_num_blocks=8)
    out = rerank_dataset(
        ds,
        model=bert_dir,
        num_actors=2,
        batch_size=150,
        reranker_kwargs=OPTIONS,
        ray_remote_args={"runtime_env": {"env_vars": env}},
    ).take_all()
    assert len(crashed_pids(crashes)) == 1  # an actor really died on its first block
    assert [r["n"] for r in out] == list(range(len(rows)))  # nothing lost, nothing twice
    _, expected = in_process
    assert max(abs(r["score"] - e) for r, e in zip(out, expected)) <= 1e-5


def poisoned_rows(poison_at: int) -> list:
    rows = [dict(n=r.pop("n"), **r) for r in make_rows(4, 10, seed=2)]  # 40 rows, "n" shown first
    rows[poison_at]["text"] = POISON_TEXT  # the injected fault crashes any actor scoring this row
    return rows


def block_bounds(message: str) -> list:
    """The 'n' of the first and last rows that the 'retries exhausted' line shows."""
    line = next(line for line in message.splitlines() if "retries exhausted" in line)
    return [int(n) for n in re.findall(r"'n': (\d+)", line)]


def test_block_that_crashes_every_time_stops_the_job_after_max_retries(
    local_ray, bert_dir, tmp_path
):
    env, crashes = fault_env(tmp_path, once=False)
    ds = ray.data.from_items(poisoned_rows(17), override_num_blocks=4)
    began = time.monotonic()
    with pytest.raises(Exception, match="retries exhausted") as raised:
        rerank_dataset(
            ds,
            model=bert_dir,
            batch_size=10,
            reranker_kwargs=OPTIONS,
            max_retries=1,
            ray_remote_args={"runtime_env": {"env_vars": env}},
        ).take_all()
    assert time.monotonic() - began < 600
    message = str(raised.value)
    assert "crashed its actor on each of its 2 tries (max_retries=1)" in message
    first, last = block_bounds(message)
    assert first <= 17 <= last and last - first == 9  # the 10-row block holding row 17
    assert len(crashed_pids(crashes)) == 2  # tried 1 + max_retries times, no more


def test_retry_options_are_checked(local_ray, bert_dir):
    ds = ray.data.from_items([{"query": "q", "text": "t"}])
    with pytest.raises(ValueError, match="max_retries must be an int >= 0"):
        rerank_dataset(ds, model=bert_dir, max_retries=-1)
    with pytest.raises(ValueError, match="'max_task_retries'.*max_retries="):
        rerank_dataset(ds, model=bert_dir, ray_remote_args={"max_task_retries": -1})


def test_cli_block_that_crashes_every_time_is_one_error_line(bert_dir, tmp_path):
    """In a subprocess: its own local Ray, whose workers inherit the fault's environment."""
    source, target = tmp_path / "pairs.jsonl", tmp_path / "out.jsonl"
    fault, crashes = fault_env(tmp_path, once=False)
    source.write_text("".join(json.dumps(r) + "\n" for r in poisoned_rows(5)), encoding="utf-8")
    command = [sys.executable, "-m", "crossrank.cli", "rerank-table", str(source), "-o"]
    command += [str(target), "--model", bert_dir, "--max-length", str(MAX_LENGTH)]
    command += ["--device", "cpu", "--block-size", "10", "--max-retries", "0"]
    env = dict(os.environ, **fault)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("crossrank: error:")]
    assert len(errors) == 1 and "retries exhausted" in errors[0]
    assert "(max_retries=0)" in errors[0] and block_bounds(errors[0]) == [0, 9]
    assert len(crashed_pids(crashes)) == 1
    assert not target.exists()


def test_bad_row_stops_the_job_naming_column_and_row(local_ray, bert_dir):
    rows = make_rows(4, 10, seed=1)
    rows[17]["text"] = None
    ds = ray.data.from_items(rows, override_num_blocks=2)
    with pytest.raises(Exception, match=r"column 'text' must hold strings.*'n': 17"):
        rerank_dataset(ds, model=bert_dir, reranker_kwargs=OPTIONS).take_all()


def test_cli_bad_row_is_one_error_line_and_no_output(local_ray, bert_dir, tmp_path, capsys):
    source, target = tmp_path / "bad.parquet", tmp_path / "out.parquet"
    rows = [{"query": "q", "text": "t", "id": "a"}, {"query": "q", "text": None, "id": "b"}]
    pq.write_table(pa.Table.from_pylist(rows), source)
    argv = ["rerank-table", str(source), "-o", str(target), "--model", bert_dir]
    assert main(argv + ["--max-length", str(MAX_LENGTH), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "crossrank: error: column 'text' must hold strings" in error and "'id': 'b'" in error
    assert not target.exists() and not (tmp_path / "out.parquet.partial").exists()


def test_argument_errors_before_any_work(local_ray, bert_dir):
    ds = ray.data.from_items([{"question": "q", "text": "t"}])
    with pytest.raises(ValueError, match=r"query_column='query' is not a column.*question"):
        rerank_dataset(ds, model=bert_dir)
    with pytest.raises(ValueError, match="num_actors must be an int >= 1"):
        rerank_dataset(ds, model=bert_dir, query_column="question", num_actors=0)
    scored = ray.data.from_items([{"query": "q", "text": "t", "score": 1.0}])
    with pytest.raises(ValueError, match="score_column='score' is already a column"):
        rerank_dataset(scored, model=bert_dir)


def test_cli_parquet_round_trip(local_ray, bert_dir, rows, in_process, tmp_path, capsys):
    source, target = tmp_path / "pairs.parquet", tmp_path / "scored.parquet"
    pq.write_table(pa.Table.from_pylist(rows[:300]), source)
    code = main(
        ["rerank-table", str(source), "--output", str(target), "--model", bert_dir]
        + [
            "--max-length",
            str(MAX_LENGTH),
            "--device",
            "cpu",
            "--actors",
            "2",
            "--block-size",
            "64",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == 300
    table = pq.read_table(target)
    assert table.column_names == ["qid", "query", "text", "n", "score"]
    assert table.column("n").to_pylist() == list(range(300))
    _, expected = in_process
    scores = table.column("score").to_pylist()
    assert max(abs(s - e) for s, e in zip(scores, expected[:300])) <= 1e-5


def test_cli_jsonl_round_trip_with_top_k(local_ray, bert_dir, rows, in_process, tmp_path):
    source, target = tmp_path / "pairs.jsonl", tmp_path / "best.jsonl"
    group = rows[:48]  # two queries
    source.write_text("".join(json.dumps(r) + "\n" for r in group), encoding="utf-8")
    argv = ["rerank-table", str(source), "-o", str(target), "--model", bert_dir, "--top-k", "2"]
    argv += ["--group-column", "qid", "--max-length", str(MAX_LENGTH), "--device", "cpu"]
    assert main(argv) == 0
    out = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    reranker, _ = in_process
    assert sorted(r["qid"] for r in out) == ["q0", "q0", "q1", "q1"]
    for qid in ("q0", "q1"):
        own = [r for r in group if r["qid"] == qid]
        hits = reranker.rank(own[0]["query"], [r["text"] for r in own], top_k=2)
        kept = [r for r in out if r["qid"] == qid]
        assert [(r["n"], r["rank"]) for r in kept] == [
            (own[h.index]["n"], i + 1) for i, h in enumerate(hits)
        ]
        assert set(kept[0]) == {"qid", "query", "text", "n", "score", "rank"}


def test_cli_rejects_unknown_format(tmp_path, capsys):
    source = tmp_path / "pairs.csv"
    source.write_text("query,text\n", encoding="utf-8")
    assert main(["rerank-table", str(source), "--output", str(tmp_path / "out.parquet")]) == 2
    assert "INPUT" in capsys.readouterr().err
