"""Evaluate a reranker on BEIR-format data: load, BM25 first stage, rerank, ir-measures metrics.

Needs the ``eval`` extra (``pip install "crossrank[eval]"``: bm25s, PyStemmer, ir-measures).

>>> from crossrank import Reranker
>>> from crossrank.evaluation import evaluate
>>> report = evaluate("data/scifact", Reranker("./my-reranker"), split="test")  # doctest: +SKIP
>>> print(report.table())                                                       # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from tqdm.auto import tqdm

if TYPE_CHECKING:  # pragma: no cover
    from .reranker import Reranker

Run = Dict[str, Dict[str, float]]  # query id → {doc id: score}
Qrels = Dict[str, Dict[str, int]]  # query id → {doc id: graded relevance}
METRICS = ("nDCG@10", "R@10", "R@100", "RR@10")  # RR@10 is MRR@10 once averaged over queries


@dataclass
class BeirData:
    """One BEIR collection and split: ``corpus`` id → (title, text), ``queries`` id → text, ``qrels``."""

    corpus: Dict[str, Tuple[str, str]]
    queries: Dict[str, str]
    qrels: Qrels
    name: str = ""

    def doc_text(self, doc_id: str) -> str:
        """The text that BM25 indexes and the reranker reads: ``title + " " + text``."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip()

    def subset(self, max_queries: Optional[int]) -> BeirData:
        """The same data with only the first ``max_queries`` judged queries (qrels file order)."""
        if max_queries is None:
            return self
        if max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        keep = list(self.qrels)[:max_queries]
        return BeirData(
            self.corpus,
            {q: self.queries[q] for q in keep},
            {q: self.qrels[q] for q in keep},
            self.name,
        )


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"crossrank evaluation and training need {module!r}: pip install 'crossrank[eval]'"
        ) from None


def _read_jsonl(path: str, fields: Tuple[str, ...]) -> List[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number} is not a JSON object")
            for name in fields:
                value = row.get(name, "" if name == "title" else None)
                if not isinstance(value, str) or (name == "_id" and not value):
                    raise ValueError(f"{path}: line {number} needs a string field {name!r}")
            rows.append(row)
    return rows


def _find(directory: str, *names: str) -> str:
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{directory}: no {' or '.join(names)} (expected BEIR format)")


def load_beir(directory: str, split: str = "test") -> BeirData:
    """Load ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from ``directory``.

    Only queries with a relevant document in the split are kept. Malformed files raise ``ValueError`` naming the file
    and line.

    >>> data = load_beir("data/scifact", split="test")  # doctest: +SKIP
    >>> len(data.queries), len(data.corpus)              # doctest: +SKIP
    (300, 5183)
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"data directory {directory!r} does not exist")
    corpus_path = _find(directory, "corpus.jsonl", "corpus.jsonl.gz")
    corpus: Dict[str, Tuple[str, str]] = {}
    for row in _read_jsonl(corpus_path, ("_id", "title", "text")):
        corpus[row["_id"]] = (row.get("title", ""), row["text"])
    queries_path = _find(directory, "queries.jsonl", "queries.jsonl.gz")
    all_queries = {row["_id"]: row["text"] for row in _read_jsonl(queries_path, ("_id", "text"))}
    qrels_path = os.path.join(directory, "qrels", f"{split}.tsv")
    if not os.path.isfile(qrels_path):
        splits = sorted(p.stem for p in Path(directory, "qrels").glob("*.tsv"))
        raise FileNotFoundError(f"{qrels_path} does not exist (splits here: {splits or 'none'})")
    qrels = _read_qrels(qrels_path, all_queries, corpus)
    queries = {q: all_queries[q] for q in qrels}
    return BeirData(corpus, queries, qrels, os.path.basename(os.path.normpath(directory)))


def _read_qrels(path: str, queries: Dict[str, str], corpus: Dict[str, object]) -> Qrels:
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as stream:
        header = stream.readline().rstrip("\r\n").split("\t")
        if header[:3] != ["query-id", "corpus-id", "score"]:
            raise ValueError(
                f"{path}: line 1 must be the header 'query-id<TAB>corpus-id<TAB>score', got {header!r}"
            )
        for number, line in enumerate(stream, 2):
            if not line.strip():
                continue
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) != 3:
                raise ValueError(f"{path}: line {number} has {len(cells)} columns, expected 3")
            query_id, doc_id, score = cells
            try:
                relevance = int(score)
            except ValueError:
                raise ValueError(f"{path}: line {number} score {score!r} is not an int") from None
            if query_id not in queries:
                raise ValueError(f"{path}: line {number} query-id {query_id!r} is not in queries")
            if doc_id not in corpus:
                raise ValueError(f"{path}: line {number} corpus-id {doc_id!r} is not in the corpus")
            qrels.setdefault(query_id, {})[doc_id] = relevance
    # Queries with no relevant document cannot be scored by nDCG/recall; BEIR drops them too.
    return {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


class BM25:
    """Lucene BM25 (``bm25s``) over ``title + " " + text``: lowercase, English stopwords, Snowball.

    >>> bm25 = BM25(data)                                       # doctest: +SKIP
    >>> bm25.search({"q1": "giant panda diet"}, top_n=100)["q1"]  # doctest: +SKIP
    {'d7': 12.3, ...}
    """

    def __init__(
        self, data: BeirData, k1: float = 1.5, b: float = 0.75, show_progress: bool = False
    ):
        bm25s = self._bm25s = _require("bm25s")
        self._stem = _require("Stemmer").Stemmer("english").stemWords
        self.doc_ids = list(data.corpus)
        self.show_progress = show_progress
        tokens = self._tokenize([data.doc_text(d) for d in self.doc_ids])
        self.index = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.index.index(tokens, show_progress=show_progress)

    def _tokenize(self, texts: List[str]):
        return self._bm25s.tokenize(
            texts, lower=True, stopwords="en", stemmer=self._stem, show_progress=self.show_progress
        )

    def search(self, queries: Dict[str, str], top_n: int = 100) -> Run:
        """Top ``top_n`` documents for each query, as {query id: {doc id: BM25 score}}."""
        if not queries:
            return {}
        top_n = min(top_n, len(self.doc_ids))
        tokens = self._bm25s.tokenize(
            list(queries.values()),
            lower=True,
            stopwords="en",
            stemmer=self._stem,
            return_ids=False,
            show_progress=False,
        )
        hits, scores = self.index.retrieve(
            tokens, k=top_n, show_progress=self.show_progress, n_threads=1
        )
        run: Run = {}
        for query_id, row, row_scores in zip(queries, hits, scores):
            # Documents sharing no term with the query score 0: not retrieved.
            run[query_id] = {self.doc_ids[i]: float(s) for i, s in zip(row, row_scores) if s > 0}
        return run


def compute_metrics(qrels: Qrels, run: Run, metrics=METRICS) -> Dict[str, float]:
    """Mean metrics over the queries of ``qrels`` with ``ir-measures`` (trec_eval's linear gain).

    ir-measures picks a provider per measure (pytrec_eval for nDCG and recall); forcing
    pytrec_eval would silently drop the cutoff of ``RR@10``. Queries missing from ``run`` count as 0.

    >>> compute_metrics({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}})["RR@10"]
    0.5
    """
    ir_measures = _require("ir_measures")
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
) -> Run:
    """Score every (query, candidate) of ``run`` with ``reranker`` (raw scores)."""
    reranked: Run = {}
    total = sum(len(docs) for docs in run.values())
    with tqdm(total=total, desc=desc, unit="pair", disable=not show_progress) as bar:
        for query_id, docs in run.items():
            doc_ids = list(docs)
            pairs = [[data.queries[query_id], data.doc_text(d)] for d in doc_ids]
            scores = reranker.compute_score(pairs) if pairs else []
            reranked[query_id] = dict(zip(doc_ids, scores))
            bar.update(len(pairs))
    return reranked


def _min_max(scores: Dict[str, float]) -> Dict[str, float]:
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {d: (s - low) / span if span > 0 else 0.0 for d, s in scores.items()}


def fuse(first_stage: Run, reranked: Run, weight: float) -> Run:
    """``weight × BM25 + (1 − weight) × reranker``, both min-max normalized per query."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fuse weight must be in [0, 1], got {weight}")
    fused: Run = {}
    for query_id, scores in reranked.items():
        if not scores:
            fused[query_id] = {}
            continue
        a, b = _min_max(first_stage[query_id]), _min_max(scores)
        fused[query_id] = {d: weight * a[d] + (1.0 - weight) * b[d] for d in scores}
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

    def to_dict(self) -> dict:
        """Everything but the runs, JSON-ready."""
        return {k: v for k, v in self.__dict__.items() if k != "runs"}

    def table(self) -> str:
        """A plain-text table: one row per system, one column per metric."""
        header = f"{'system':<16}" + "".join(f"{m:>10}" for m in METRICS)
        lines = [
            f"{self.dataset} {self.split}: {self.num_queries} queries, BM25 top-{self.top_n}",
            header,
        ]
        for system, values in self.results.items():
            lines.append(f"{system:<16}" + "".join(f"{values[m]:>10.4f}" for m in METRICS))
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
    results = {name: compute_metrics(data.qrels, run) for name, run in runs.items()}
    return EvalReport(
        dataset=data.name,
        split=split,
        num_queries=len(data.queries),
        top_n=top_n,
        model=getattr(reranker, "model_name", None),
        results=results,
        seconds=seconds,
        runs=runs,
    )
