"""The BM25 first stage (``bm25s``, Lucene scoring) over a BEIR collection.

Needs the ``eval`` extra (``pip install "crossrank[eval]"``: bm25s, PyStemmer).
"""

from __future__ import annotations

from typing import Dict, List

from .beir import BeirData, Run


def require_extra(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"crossrank evaluation and training need {module!r}: pip install 'crossrank[eval]'"
        ) from None


class BM25:
    """Lucene BM25 (``bm25s``) over ``title + " " + text``: lowercase, English stopwords, Snowball.

    >>> bm25 = BM25(data)                                       # doctest: +SKIP
    >>> bm25.search({"q1": "giant panda diet"}, top_n=100)["q1"]  # doctest: +SKIP
    {'d7': 12.3, ...}
    """

    def __init__(
        self, data: BeirData, k1: float = 1.5, b: float = 0.75, show_progress: bool = False
    ):
        bm25s = self._bm25s = require_extra("bm25s")
        self._stem = require_extra("Stemmer").Stemmer("english").stemWords
        self.doc_ids = list(data.corpus)
        self._position = {d: i for i, d in enumerate(self.doc_ids)}
        self.show_progress = show_progress
        tokens = self._tokenize([data.doc_text(d) for d in self.doc_ids])
        self.index = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.index.index(tokens, show_progress=show_progress)

    def _tokenize(self, texts: List[str]):
        return self._bm25s.tokenize(
            texts, lower=True, stopwords="en", stemmer=self._stem, show_progress=self.show_progress
        )

    def _query_tokens(self, texts: List[str]):
        return self._bm25s.tokenize(
            texts, lower=True, stopwords="en", stemmer=self._stem, return_ids=False,
            show_progress=False,
        )  # fmt: skip

    def score(self, query: str, doc_ids: List[str]) -> List[float]:
        """The BM25 score of each of ``doc_ids`` for ``query`` (0 where no term is shared)."""
        tokens = self._query_tokens([query])[0]
        if not tokens:
            return [0.0] * len(doc_ids)
        scores = self.index.get_scores(list(tokens))
        return [float(scores[self._position[d]]) for d in doc_ids]

    def search(self, queries: Dict[str, str], top_n: int = 100) -> Run:
        """Top ``top_n`` documents for each query, as {query id: {doc id: BM25 score}}."""
        if not queries:
            return {}
        top_n = min(top_n, len(self.doc_ids))
        tokens = self._query_tokens(list(queries.values()))
        hits, scores = self.index.retrieve(
            tokens, k=top_n, show_progress=self.show_progress, n_threads=1
        )
        run: Run = {}
        for query_id, row, row_scores in zip(queries, hits, scores):
            # Documents sharing no term with the query score 0: not retrieved.
            run[query_id] = {self.doc_ids[i]: float(s) for i, s in zip(row, row_scores) if s > 0}
        return run
