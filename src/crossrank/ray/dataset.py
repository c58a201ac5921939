"""Batch reranking of a Ray Dataset of (query, passage) rows: one Reranker per actor, blocks of pairs.

>>> import ray.data                                                         # doctest: +SKIP
>>> from crossrank.ray import rerank_dataset                                # doctest: +SKIP
>>> ds = ray.data.from_items([{"query": "what is panda?", "text": "a bear"}])  # doctest: +SKIP
>>> rerank_dataset(ds, model="BAAI/bge-reranker-base").take_all()          # doctest: +SKIP
[{'query': 'what is panda?', 'text': 'a bear', 'score': 0.93...}]
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Optional, Union

from crossrank.inputs import check_count
from crossrank.loading import DEFAULT_MODEL
from crossrank.ray.retries import RunGuard, start_block_runs
from crossrank.ray.workers import check_model, check_shares, cpu_threads, load_reranker
from crossrank.results import Selection, select

# Hidden columns while ranking (removed from the output): the input order inside a group and the
# raw logit, select's tie-breaks after the score.
_ROW_ID = "__crossrank_row_id"
_LOGIT = "__crossrank_logit"
_ROW_SHOWN_CHARS = 300


def _import_ray():
    try:
        import ray.data  # the real Ray: absolute import, never this package
    except ImportError:
        from crossrank.ray.extra import RAY_INSTALL

        raise ImportError(f"crossrank.ray needs Ray Data: {RAY_INSTALL}") from None
    return ray


def _describe_row(table, row: int) -> str:
    shown = repr({name: table.column(name)[row].as_py() for name in table.column_names})
    return shown if len(shown) <= _ROW_SHOWN_CHARS else shown[:_ROW_SHOWN_CHARS] + "...}"


def _strings(table, column: str) -> list:
    """The column's values, which must all be strings; else a ValueError naming column and row."""
    values = table.column(column).to_pylist()
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(
                f"column {column!r} must hold strings, but a row holds "
                f"{type(value).__name__} {value!r}: {_describe_row(table, row)}"
            )
    return values


class BlockScorer:
    """Ray Data actor: loads one Reranker, then adds a score column to each block of pairs.

    The block is scored once, as raw logits; ``score_column`` gets the scores the
    :class:`~crossrank.results.Selection` gives them (normalized with the reranker's calibration
    if any, or raw), and with ``keep_logits`` a hidden logit column follows for the ranking step.
    """

    def __init__(
        self,
        model: str,
        reranker_kwargs: Dict[str, Any],
        query_column: str,
        text_column: str,
        score_column: str,
        selection: Selection,
        threads: Optional[int],
        block_runs=None,
        max_retries: int = 3,
        keep_logits: bool = False,
    ) -> None:
        self.reranker = load_reranker(model, reranker_kwargs, threads)
        self.columns = (query_column, text_column)
        self.score_column = score_column
        self.selection = selection
        self.keep_logits = keep_logits
        self.guard = RunGuard(block_runs, max_retries) if block_runs is not None else None

    def __call__(self, table):
        import pyarrow as pa

        queries, texts = (_strings(table, column) for column in self.columns)
        run = self.guard.begin(table, queries, texts, _describe_row) if self.guard else None
        logits = self.reranker.compute_score(list(zip(queries, texts)))
        scores = self.selection.scores(logits, self.reranker.calibration)
        scored = table.append_column(self.score_column, pa.array(scores, type=pa.float64()))
        if self.keep_logits:
            scored = scored.append_column(_LOGIT, pa.array(logits, type=pa.float64()))
        if self.guard:
            self.guard.end(run)
        return scored


def rank_group(table, selection: Selection, score_column: str, text_column: str, rank_column: str):
    """One group's rows selected and ordered as ``Reranker.rank`` does, ranked 1, 2, ...

    The scores were made by ``selection`` in the actors; :func:`crossrank.results.select`, the
    step :meth:`Selection.apply` ends with, orders them (score, then raw logit, then input order)
    and applies the selection's ``threshold``, ``min_keep`` and ``top_k``. The hidden columns go.
    """
    import pyarrow as pa

    table = table.sort_by(_ROW_ID)  # input order: select's last tie-break is the position
    hits = select(
        table.column(score_column).to_pylist(),
        table.column(text_column).to_pylist(),
        selection.top_k,
        selection.threshold,
        selection.min_keep,
        logits=table.column(_LOGIT).to_pylist(),
    )
    order = pa.array([hit.index for hit in hits], type=pa.int64())
    ranked = table.take(order).drop_columns([_ROW_ID, _LOGIT])
    return ranked.append_column(rank_column, pa.array(range(1, ranked.num_rows + 1), pa.int64()))


def rerank_dataset(
    ds,
    model: Union[str, os.PathLike] = DEFAULT_MODEL,
    query_column: str = "query",
    text_column: str = "text",
    *,
    num_actors: int = 1,
    num_gpus_per_actor: float = 0,
    num_cpus_per_actor: float = 1,
    batch_size: int = 512,
    reranker_kwargs: Optional[Dict[str, Any]] = None,
    normalize: bool = True,
    score_column: str = "score",
    group_column: Optional[str] = None,
    top_k: Optional[int] = None,
    threshold: Optional[float] = None,
    min_keep: int = 0,
    rank_column: str = "rank",
    max_retries: int = 3,
    ray_remote_args: Optional[Dict[str, Any]] = None,
):
    """Score every (query, text) row of a Ray Dataset with a cross-encoder; add a ``score`` column.

    Each of ``num_actors`` actors loads ``Reranker(model, **reranker_kwargs)`` once and scores
    blocks of ``batch_size`` rows (pairs, whatever queries they belong to) with
    ``Reranker.compute_score``, so scores equal the in-process ones. Rows keep their order and
    every other column. ``model`` must be loadable on every node (a hub id or a shared path).

    Ranking: with ``group_column`` (the column naming a query, e.g. ``"query_id"``), ``top_k`` or
    ``threshold`` (either alone groups by ``query_column``), each group's rows are selected and
    ordered by :func:`crossrank.results.select`, the very step of ``Reranker.rank``: best score
    first, ties by raw logit, then input order; rows scoring below ``threshold`` dropped but never
    below ``min_keep``; then the best ``top_k`` kept. A ``rank`` column (1 = best) is added and
    the output is ordered by group, then rank.

    Faults: a dead actor is restarted and its blocks retried, so each input row is in the output
    once. A block that crashes its actor on each of ``1 + max_retries`` tries stops the job with
    :class:`~crossrank.ray.retries.PoisonBlockError` ("retries exhausted", showing the block's
    first and last rows). A bad row (a query or text that is not a string) stops the job with a
    ``ValueError`` naming the column and showing the row; a missing column stops it before any
    work.

    Args:
        ds: a ``ray.data.Dataset`` with one (query, passage) pair per row.
        num_actors: actors (model copies) scoring in parallel.
        num_gpus_per_actor: GPUs each actor reserves (``0.5`` packs two actors on a GPU).
        num_cpus_per_actor: CPUs each actor reserves; on CPU also its torch threads.
        batch_size: pairs per block handed to an actor.
        reranker_kwargs: passed to :class:`crossrank.Reranker` (``max_length``, ``dtype``, ...).
        normalize: sigmoid scores in (0, 1) (default), or raw logits with ``False``.
        top_k, threshold, min_keep: as in :meth:`crossrank.Reranker.rank`, per group.
        max_retries: tries of a block after the first, when its actor dies while scoring it.
        ray_remote_args: more Ray options for the actors (``resources``, ``runtime_env``, ...).
            Ray fuses read/map steps before the actors into them only if those steps carry the
            same options; unfused, they need CPUs of their own, so then leave some free
            (``num_actors * num_cpus_per_actor`` below the cluster's CPUs).

    Example:
        >>> out = rerank_dataset(ds, model="BAAI/bge-reranker-base", num_actors=8,
        ...                      num_gpus_per_actor=1, group_column="query_id", top_k=10)
        ...                                                                  # doctest: +SKIP
    """
    ray = _import_ray()
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(f"ds must be a ray.data.Dataset, got {type(ds).__name__}")
    model = check_model(model)
    check_count(num_actors, "num_actors", 1)
    check_count(batch_size, "batch_size", 1)
    check_count(max_retries, "max_retries", 0)
    selection = Selection(top_k, threshold, min_keep, normalize)
    remote_args = dict(ray_remote_args or {})
    for option in ("max_task_retries", "max_restarts"):
        if option in remote_args:
            raise ValueError(
                f"ray_remote_args sets {option!r}, which rerank_dataset manages: pass "
                "max_retries= (tries of a block after the first) instead"
            )
    check_shares(num_gpus_per_actor=num_gpus_per_actor, num_cpus_per_actor=num_cpus_per_actor)
    kwargs = dict(reranker_kwargs or {})
    schema = ds.schema()
    if schema is None:  # no rows and no columns: nothing to score
        return ds
    ranking = group_column is not None or top_k is not None or threshold is not None
    _check_columns(
        list(schema.names),
        query_column,
        text_column,
        group_column,
        score_column,
        rank_column,
        ranking,
    )
    threads = cpu_threads(num_gpus_per_actor, num_cpus_per_actor)
    # Retries: Ray Data restarts a dead actor and retries its blocks (max_restarts and
    # max_task_retries default to -1 for actor pools); the RunGuard in each actor bounds a block
    # to 1 + max_retries tries. No retry options are passed here: any remote option the upstream
    # read/map tasks lack stops Ray from fusing them into the actors, and unfused tasks then wait
    # for CPUs that the actors hold until the end (a deadlock when the actors fill the cluster).
    with warnings.catch_warnings():
        # Ray 2.60 marks extra remote args (runtime_env, resources, ...) as deprecated
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        scored = ds.map_batches(
            BlockScorer,
            fn_constructor_kwargs={
                "model": model,
                "reranker_kwargs": kwargs,
                "query_column": query_column,
                "text_column": text_column,
                "score_column": score_column,
                "selection": selection,
                "threads": threads,
                "block_runs": start_block_runs(ray),
                "max_retries": max_retries,
                "keep_logits": ranking,
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_actors),
            num_cpus=num_cpus_per_actor,
            num_gpus=num_gpus_per_actor or None,
            **remote_args,
        )
    _preserve_order(scored)
    if not ranking:
        return scored
    from ray.data.expressions import monotonically_increasing_id

    # Input order, for ties inside a group (a group's rows reach map_groups in no set order).
    # Numbered after scoring (blocks come out of the actors in input order), so this task never
    # waits upstream of actors holding every CPU.
    scored = scored.with_column(_ROW_ID, monotonically_increasing_id())
    ranked = scored.groupby(group_column or query_column).map_groups(
        rank_group,
        fn_kwargs={
            "selection": selection,
            "score_column": score_column,
            "text_column": text_column,
            "rank_column": rank_column,
        },
        batch_format="pyarrow",
    )
    _preserve_order(ranked)
    return ranked


def _preserve_order(ds) -> None:
    """Ask Ray Data for blocks in input order (not completion order), for ``ds`` alone.

    A derived Dataset shares its parent's context object; setting the option there would change
    the caller's dataset too, so ``ds`` gets its own copy (no public setter exists for it).
    """
    ds._context = ds.context.copy()
    ds._context.execution_options.preserve_order = True


def _check_columns(
    names, query_column, text_column, group_column, score_column, rank_column, ranking
):
    for argument, column in (
        ("query_column", query_column),
        ("text_column", text_column),
        ("group_column", group_column),
    ):
        if column is not None and column not in names:
            raise ValueError(f"{argument}={column!r} is not a column of the dataset: {names}")
    added = [("score_column", score_column)]
    if ranking:
        added.append(("rank_column", rank_column))
    for argument, column in added:
        if column in names:
            raise ValueError(
                f"{argument}={column!r} is already a column of the dataset; pick another name"
            )
