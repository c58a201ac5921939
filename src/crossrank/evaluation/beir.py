"""BEIR-format collections: ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Needs nothing beyond the standard library. Malformed files raise ``ValueError`` naming file and line.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

Run = Dict[str, Dict[str, float]]  # query id → {doc id: score}
Qrels = Dict[str, Dict[str, int]]  # query id → {doc id: graded relevance}


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
    return _with_split(directory, split, corpus)


def load_split(directory: str, split: str, data: BeirData) -> BeirData:
    """Another split of the collection ``data`` was loaded from: its queries and qrels, same corpus."""
    return _with_split(os.fspath(directory), split, data.corpus)


def _with_split(directory: str, split: str, corpus: Dict[str, Tuple[str, str]]) -> BeirData:
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
