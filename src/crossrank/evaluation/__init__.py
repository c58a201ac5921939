"""Evaluating rerankers on BEIR-format data: loading, the BM25 first stage, metrics and reports.

- :mod:`~crossrank.evaluation.beir`: corpus, queries and qrels of a BEIR directory.
- :mod:`~crossrank.evaluation.bm25`: the BM25 first stage (bm25s + PyStemmer).
- :mod:`~crossrank.evaluation.reranking`: rerank a run, fuse, metrics (ir-measures), reports.

Needs the ``eval`` extra (``pip install "crossrank[eval]"``).

>>> from crossrank import Reranker
>>> from crossrank.evaluation import evaluate
>>> report = evaluate("data/scifact", Reranker("./my-reranker"), split="test")  # doctest: +SKIP
"""

from .beir import BeirData, Qrels, Run, load_beir
from .bm25 import BM25
from .reranking import (
    METRICS,
    EvalReport,
    compute_metrics,
    evaluate,
    fuse,
    metrics_for,
    rerank,
)

__all__ = [
    "BM25",
    "METRICS",
    "BeirData",
    "EvalReport",
    "Qrels",
    "Run",
    "compute_metrics",
    "evaluate",
    "fuse",
    "load_beir",
    "metrics_for",
    "rerank",
]
