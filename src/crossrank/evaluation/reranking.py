"""Evaluate a reranker on BEIR-format data: metrics (ir-measures), reranking a run, fusion, reports.

Loading lives in :mod:`crossrank.evaluation.beir`, the BM25 first stage in
:mod:`crossrank.evaluation.bm25`; the package re-exports both.

Needs the ``eval`` extra (``pip install "crossrank[eval]"``: bm25s, PyStemmer, ir-measures).

>>> from crossrank import Reranker
>>> from crossrank.evaluation import evaluate
>>> report = evaluate("data/scifact", Reranker("./my-reranker"), split="test")  # doctest: +SKIP
>>> print(report.table())                                                       # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from tqdm.auto import tqdm

from ..fusion import fuse_scores
from ..inputs import check_fusion_weight
from .beir import BeirData, Qrels, Run, load_beir
from .bm25 import BM25, require_extra

if TYPE_CHECKING:  # pragma: no cover
    from ..reranker import Reranker

__all__ = [
    "BM25",
    "BeirData",
    "EvalReport",
    "compute_metrics",
    "evaluate",
    "fuse",
    "load_beir",
    "rerank",
]
METRICS = ("nDCG@10", "R@10", "R@100", "RR@10")  # RR@10 is MRR@10 once averaged over queries


def metrics_for(top_n: int) -> Tuple[str, ...]:
    """:data:`METRICS` for runs of ``top_n`` candidates: recall at ``top_n`` when under 100.

    A run of 20 documents has no 100th, so its "R@100" would be its recall at 20 under a wrong name.

    >>> metrics_for(20)
    ('nDCG@10', 'R@10', 'R@20', 'RR@10')
    """
    return tuple(f"R@{top_n}" if m == "R@100" and top_n < 100 else m for m in METRICS)


def compute_metrics(qrels: Qrels, run: Run, metrics=METRICS) -> Dict[str, float]:
    """Mean metrics over the queries of ``qrels`` with ``ir-measures`` (trec_eval's linear gain).

    ir-measures picks a provider per measure (pytrec_eval for nDCG and recall); forcing
    pytrec_eval would silently drop the cutoff of ``RR@10``. Queries missing from ``run`` count as 0.

    >>> compute_metrics({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}})["RR@10"]
    0.5
    """
    ir_measures = require_extra("ir_measures")
    measures = [ir_measures.parse_measure(m) for m in metrics]
    per_query = {str(m): {q: 0.0 for q in qrels} for m in measures}
    judged_run = {q: docs for q, docs in run.items() if q in qrels and docs}
    for result in ir_measures.iter_calc(measures, qrels, judged_run):
        per_query[str(result.measure)][result.query_id] = float(result.value)
    return {name: sum(v.values()) / len(v) if v else 0.0 for name, v in per_query.items()}


def rerank(
    reranker: Reranker,
    data: BeirData,
    run: Run,
    show_progress: bool = True,
    desc: str = "Reranking",
    block_pairs: int = 512,
) -> Run:
    """Score every (query, candidate) of ``run`` with ``reranker`` (raw scores).

    Queries go to the reranker's multi-query pipeline in blocks of about ``block_pairs`` pairs, so
    the candidates of several queries share length-sorted batches.
    """
    reranked: Run = {}
    total = sum(len(docs) for docs in run.values())
    block: List[str] = []

    def flush(bar) -> None:
        pairs = [(data.queries[q], data.doc_text(d)) for q in block for d in run[q]]
        scores = reranker.compute_score(pairs) if pairs else []
        start = 0
        for query_id in block:
            doc_ids = list(run[query_id])
            reranked[query_id] = dict(zip(doc_ids, scores[start : start + len(doc_ids)]))
            start += len(doc_ids)
        bar.update(len(pairs))
        block.clear()

    with tqdm(total=total, desc=desc, unit="pair", disable=not show_progress) as bar:
        pending = 0
        for query_id, docs in run.items():
            block.append(query_id)
            pending += len(docs)
            if pending >= block_pairs:
                flush(bar)
                pending = 0
        flush(bar)
    return reranked


def fuse(first_stage: Run, reranked: Run, weight: float, method: str = "minmax") -> Run:
    """``weight × BM25 + (1 − weight) × reranker``, both min-max normalized per query.

    The same fusion as ``Reranker.rank(first_stage_scores=..., fusion=method,
    fusion_weight=weight)`` (:func:`crossrank.fusion.fuse_scores`) over the documents of
    ``reranked``; ``method="rrf"`` for reciprocal-rank fusion.
    """
    weight = check_fusion_weight(weight, "fuse weight")
    fused: Run = {}
    for query_id, scores in reranked.items():
        own = first_stage.get(query_id, {})
        missing = [d for d in scores if d not in own]
        if missing:
            raise ValueError(
                f"query {query_id!r}: document {missing[0]!r} is reranked but has no first-stage "
                "score; fuse the run that was reranked"
            )
        doc_ids = list(scores)
        values = fuse_scores([own[d] for d in doc_ids], list(scores.values()), method, weight)
        fused[query_id] = dict(zip(doc_ids, values))
    return fused


@dataclass
class EvalReport:
    """Metrics per system (``bm25``, ``rerank``, ``fused@w``), timings, and the runs themselves."""

    dataset: str
    split: str
    num_queries: int
    top_n: int
    model: Optional[str]
    results: Dict[str, Dict[str, float]]
    seconds: Dict[str, float]
    runs: Dict[str, Run] = field(default_factory=dict, repr=False)
    metrics: Tuple[str, ...] = METRICS  # the columns: metrics_for(top_n)

    def to_dict(self) -> dict:
        """Everything but the runs, JSON-ready."""
        return {k: v for k, v in self.__dict__.items() if k != "runs"}

    def table(self) -> str:
        """A plain-text table: one row per system, one column per metric."""
        header = f"{'system':<16}" + "".join(f"{m:>10}" for m in self.metrics)
        lines = [
            f"{self.dataset} {self.split}: {self.num_queries} queries, BM25 top-{self.top_n}",
            header,
        ]
        for system, values in self.results.items():
            lines.append(f"{system:<16}" + "".join(f"{values[m]:>10.4f}" for m in self.metrics))
        return "\n".join(lines)


def evaluate(
    data_dir: str,
    reranker: Optional[Reranker] = None,
    *,
    split: str = "test",
    top_n: int = 100,
    max_queries: Optional[int] = None,
    fuse_weight: Optional[float] = None,
    show_progress: bool = True,
) -> EvalReport:
    """BM25 top-``top_n``, then (with a ``reranker``) reranked and optionally fused; metrics for each.

    >>> report = evaluate("data/scifact", Reranker("./ckpt"), max_queries=20)  # doctest: +SKIP
    >>> report.results["rerank"]["nDCG@10"]                                     # doctest: +SKIP
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    if fuse_weight is not None and reranker is None:
        raise ValueError("fuse_weight needs a reranker")
    start = time.perf_counter()
    data = load_beir(data_dir, split).subset(max_queries)
    bm25_run = BM25(data).search(data.queries, top_n)
    seconds = {"bm25": time.perf_counter() - start}
    runs = {"bm25": bm25_run}
    if reranker is not None:
        start = time.perf_counter()
        runs["rerank"] = rerank(reranker, data, bm25_run, show_progress)
        seconds["rerank"] = time.perf_counter() - start
        if fuse_weight is not None:
            runs[f"fused@{fuse_weight:g}"] = fuse(bm25_run, runs["rerank"], fuse_weight)
    metrics = metrics_for(top_n)
    results = {name: compute_metrics(data.qrels, run, metrics) for name, run in runs.items()}
    return EvalReport(
        dataset=data.name,
        split=split,
        num_queries=len(data.queries),
        top_n=top_n,
        model=getattr(reranker, "model_name", None),
        results=results,
        seconds=seconds,
        runs=runs,
        metrics=metrics,
    )
