"""Adapt a reranker to a corpus nobody labelled, in one call: pseudo queries, then training.

The route (``crossrank adapt``) chains what a user would otherwise run and tune by hand:

1. :func:`~crossrank.training.pseudo_queries.make_pseudo_dataset` writes ``RUN/pseudo``: each
   document gives a title or inverse-cloze query (``kinds``), its rest being the positive, kept
   only if BM25 ranks that positive in its top :data:`AGREEMENT_TOP` (a query BM25 cannot place
   is vague, and its label would contradict the BM25 teacher). Only the corpus is read, never the
   collection's queries or qrels.
2. :func:`~crossrank.training.loop.train` fine-tunes ``model`` on them into ``RUN/model`` with
   the :data:`RECIPE`: BM25's own ordering of each group as the distillation teacher beside the
   pseudo labels (alone, pseudo queries teach the model what titles and sentences look like, not
   what the real queries ask; the teacher keeps the lexical evidence BM25 ranks by), the whole run
   within ``budget_minutes`` of CPU time.
3. Optionally (``evaluate_split``, the one step that reads labels) the result is measured on that
   split: BM25, the reranker alone and fused with BM25 at :data:`FUSE_WEIGHT`.

``RUN/adapt.json`` records the settings, the time spent and every figure. Seeds change both the
pseudo queries drawn and the training order. How the recipe was chosen and what it gives on
Cranfield: benchmarks/RESULTS.md, "A corpus without labels".

>>> result = adapt("data/my-corpus", "all-MiniLM-L6-v2", "runs/my-corpus")  # doctest: +SKIP
>>> result.model_dir                                                         # doctest: +SKIP
'runs/my-corpus/model'
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from ..errors import ArgumentError
from .config import TrainConfig
from .pseudo_queries import KINDS as PSEUDO_KINDS
from .pseudo_queries import check_mixes

# The training settings of the route (TrainConfig fields); ``overrides`` may replace any of them.
RECIPE: Dict[str, Any] = dict(
    loss="listwise",
    negatives=3,  # a step of 8 groups of 4 pairs: twice the steps of 7 negatives in the budget
    negatives_depth=50,
    max_length=128,
    queries_per_step=8,
    # 4 epochs of the ~75% of pseudo queries BM25 agrees with: the steps of 3 unfiltered epochs
    epochs=4.0,
    learning_rate=1e-4,
    warmup_ratio=0.1,
    eval_queries=50,  # pseudo queries held out: reported, never used to pick the weights
    eval_every=100,
    eval_top_n=20,
    teacher="bm25",
    distill_weight=0.8,
    dropout=0.0,  # 20-30% cheaper steps on a CPU: more of them fit the budget
    # Held-out pseudo queries rise while real queries need not follow (RESULTS.md): the last
    # weights, at the end of the decayed schedule, not the best on pseudo queries.
    keep="last",
    budget_clock="cpu",
)
KINDS = ("title", "ict")
# Round-trip filter of the pseudo queries (BM25's first page). On Cranfield it keeps ~87% of the
# title queries and ~63% of the sentence (ICT) ones (RESULTS.md, "A corpus without labels").
AGREEMENT_TOP = 10
# BM25's weight beside the reranker, both min-max normalized per query. A corpus without labels
# has none to tune it on, so it is a constant of the route, chosen where labels could be read: the
# route run label-free on SciFact, its reranker fused at 0.1-0.9 on SciFact's test claims
# (benchmarks/fusion_weight.py: 0.6 best, 0.4-0.7 within 0.003 of it)
FUSE_WEIGHT = 0.6
BUDGET_MINUTES = 28.0
# CPU time the run spends outside the training loop's own clock (loading the model, indexing
# BM25, the held-out evaluations before and after, saving), kept out of the loop's budget so that
# the whole run stays within ``budget_minutes``
_RESERVE_MINUTES = 1.0
PSEUDO_DIR, MODEL_DIR, SUMMARY_FILE = "pseudo", "model", "adapt.json"


@dataclass
class AdaptResult:
    """What :func:`adapt` made and measured; ``to_dict()`` is ``RUN/adapt.json``."""

    output_dir: str
    model_dir: str
    seed: int
    cpu_minutes: float  # the whole route, pseudo queries to saved model: CPU time / torch threads
    minutes: float  # wall clock
    pseudo: Dict[str, Any]  # make_pseudo_dataset's summary
    training: Dict[str, Any]  # steps, stopped_by, held-out pseudo-query nDCG@10 ...
    settings: Dict[str, Any]  # the TrainConfig fields the route set
    fuse_weight: float = FUSE_WEIGHT
    evaluation: Optional[Dict[str, Any]] = None  # with evaluate_split: BM25 / alone / fused
    evaluation_seconds: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A few lines for a person: what was made, how long it took, how to use it."""
        counts = ", ".join(f"{kind} {n:,}" for kind, n in self.pseudo["queries"].items())
        training = self.training
        lines = [
            f"pseudo queries: {counts} from {self.pseudo['corpus_size']:,} documents",
            f"training: {training['steps']} steps (stopped by {training['stopped_by']}), "
            f"{self.cpu_minutes:.1f} CPU-minutes in all ({self.minutes:.1f} wall), seed {self.seed}",
        ]
        held_out = training.get("held_out_nDCG@10")
        if held_out:
            lines.append(
                "held-out pseudo queries, nDCG@10: "
                + ", ".join(f"{k} {v:.4f}" for k, v in held_out.items() if k != "step")
            )
        if self.evaluation is not None:
            split = self.evaluation["split"]
            results = self.evaluation["results"]
            lines.append(
                f"{split} ({self.evaluation['num_queries']} queries, BM25 top-"
                f"{self.evaluation['top_n']}), nDCG@10: "
                + ", ".join(f"{name} {values['nDCG@10']:.4f}" for name, values in results.items())
            )
        lines += [
            f"model: {self.model_dir}",
            f"use it fused with BM25 (weight {self.fuse_weight:g}): crossrank eval DATA --model "
            f"{self.model_dir} --fuse-weight {self.fuse_weight:g}; alone: crossrank rank --model "
            f"{self.model_dir} ...",
        ]
        return "\n".join(lines)


def _cpu_minutes(threads: int, since: float) -> float:
    return (time.process_time() - since) / threads / 60.0


def _check(budget_minutes: float, evaluate_split: Optional[str], overrides: Mapping) -> None:
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)):
        raise ArgumentError(
            f"budget_minutes (--budget-minutes) must be a number, got {budget_minutes!r}"
        )
    if not budget_minutes > _RESERVE_MINUTES + 0.5:
        raise ArgumentError(
            f"budget_minutes (--budget-minutes) must be > {_RESERVE_MINUTES + 0.5:g}: the route "
            f"keeps {_RESERVE_MINUTES:g} for loading and saving, got {budget_minutes!r}"
        )
    if evaluate_split is not None and (not isinstance(evaluate_split, str) or not evaluate_split):
        raise ArgumentError(
            f"evaluate_split (--evaluate) must be a split name, got {evaluate_split!r}"
        )
    fixed = {"model", "data_dir", "output_dir", "time_budget_minutes", "seed"}
    names = set(TrainConfig.__dataclass_fields__)
    for name in overrides:
        if name not in names or name in fixed:
            raise ArgumentError(
                f"overrides: {name!r} is not a training setting the route lets you change "
                f"(any TrainConfig field but {sorted(fixed)}; seed and budget_minutes are "
                "arguments of their own)"
            )


def _prepare(output_dir: str, overwrite: bool) -> Path:
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"output_dir (--output) {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ArgumentError(
            f"output_dir (--output) {out} is not empty: pass --overwrite (overwrite=True) to "
            "replace the run it holds, or choose another directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def adapt(
    data_dir: str,
    model: str,
    output_dir: str,
    *,
    seed: int = 42,
    budget_minutes: float = BUDGET_MINUTES,
    kinds=KINDS,
    agreement_top: Optional[int] = AGREEMENT_TOP,
    mix: Union[None, str, Sequence[str]] = None,
    evaluate_split: Optional[str] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    show_progress: bool = True,
    overwrite: bool = False,
) -> AdaptResult:
    """Adapt ``model`` (an encoder or a cross-encoder) to ``data_dir``'s corpus without its labels.

    Writes ``output_dir/pseudo`` (the pseudo queries), ``output_dir/model`` (the reranker, a
    standard checkpoint) and ``output_dir/adapt.json``. ``budget_minutes``: CPU time for the
    whole route (CPU time / torch threads, so the same figure on a busy machine). ``mix``:
    labelled collections (``"DIR[:SPLIT]"``) whose queries join the pseudo queries (see
    :func:`~crossrank.training.pseudo_queries.make_pseudo_dataset`). Only with
    ``evaluate_split`` are the collection's queries and qrels of that split read, after training,
    to report BM25, the reranker alone and fused. ``agreement_top``: the round-trip filter of the
    pseudo queries (None keeps them all). ``overrides``: :data:`RECIPE` settings replaced.
    """
    import torch

    from ..loading import open_checkpoint
    from .loop import train
    from .pseudo_queries import make_pseudo_dataset

    overrides = dict(overrides or {})
    _check(budget_minutes, evaluate_split, overrides)
    kinds = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    if not kinds or any(kind.strip() not in PSEUDO_KINDS for kind in kinds):
        raise ArgumentError(f"kinds (--kind) must be one or more of {PSEUDO_KINDS}, got {kinds!r}")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir (DATA_DIR) {data_dir!r} is not a directory")
    check_mixes(mix)  # a wrong --mix fails before anything is written
    settings = {**RECIPE, **overrides}
    model_dir, pseudo_dir = Path(output_dir) / MODEL_DIR, Path(output_dir) / PSEUDO_DIR
    config = TrainConfig(
        model=model,
        data_dir=str(pseudo_dir),
        output_dir=str(model_dir),
        seed=seed,
        time_budget_minutes=budget_minutes,
        show_progress=show_progress,
        overwrite=True,
        **settings,
    )
    config.check()  # bad settings fail before anything is written or loaded
    open_checkpoint(model)  # so does a base model that cannot load
    out = _prepare(output_dir, overwrite)

    threads = torch.get_num_threads()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    pseudo = make_pseudo_dataset(
        data_dir,
        pseudo_dir,
        kinds=kinds,
        seed=seed,
        mix=mix,
        agreement_top=agreement_top,
        overwrite=True,
    )
    if not pseudo["pseudo_queries"]:
        raise ValueError(
            f"no pseudo query could be made from {data_dir!r}'s corpus (documents without titles "
            "or sentences long enough, or none whose positive BM25 ranks in the top "
            f"{agreement_top}): see crossrank pseudo-queries --kind, --min-query-words and "
            "--bm25-agreement"
        )
    config.time_budget_minutes = (
        budget_minutes - _cpu_minutes(threads, cpu_start) - _RESERVE_MINUTES
    )
    trained = train(config)
    cpu_minutes = _cpu_minutes(threads, cpu_start)
    minutes = (time.perf_counter() - wall_start) / 60.0

    result = AdaptResult(
        output_dir=str(out),
        model_dir=str(model_dir),
        seed=seed,
        cpu_minutes=round(cpu_minutes, 3),
        minutes=round(minutes, 3),
        pseudo=pseudo,
        training={
            "steps": trained.steps,
            "stopped_by": trained.stopped_by,
            "loop_cpu_minutes": round(trained.cpu_seconds / 60, 2),
            "kept_step": trained.kept_step,
            "held_out_nDCG@10": trained.evals[-1] if trained.evals else None,
            "torch_threads": threads,
        },
        settings={**settings, "time_budget_minutes": round(config.time_budget_minutes, 2)},
    )
    if evaluate_split is not None:
        result.evaluation, result.evaluation_seconds = _evaluate(
            data_dir, trained, config.max_length, evaluate_split, show_progress
        )
    (out / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    return result


def _evaluate(data_dir, trained, max_length, split, show_progress):
    """BM25 top-100, the reranker alone and fused at FUSE_WEIGHT on ``split``'s labels."""
    from ..evaluation.reranking import evaluate
    from ..reranker import Reranker

    start = time.perf_counter()
    reranker = Reranker(trained.output_dir, max_length=max_length)
    report = evaluate(
        data_dir, reranker, split=split, fuse_weight=FUSE_WEIGHT, show_progress=show_progress
    )
    return report.to_dict(), round(time.perf_counter() - start, 1)


__all__ = [
    "AGREEMENT_TOP",
    "AdaptResult",
    "BUDGET_MINUTES",
    "FUSE_WEIGHT",
    "KINDS",
    "RECIPE",
    "adapt",
]
