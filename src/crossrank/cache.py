"""A thread-safe LRU cache of raw scores, so repeated (query, passage) pairs are scored once.

RAG chains often rerank the same candidates again (a follow-up question with the same retrieved
context, retries, several chains over one retriever). The key is the scorer's identity (model,
backend, precision, ``max_length`` and every other setting that changes a score) plus the exact
query and passage texts; the value is the raw score, so ``normalize`` is applied after lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, List, Sequence

Pair = tuple  # (query, passage) or (query, passage, passage_token_limit)


class ScoreCache:
    """A bounded map ``(identity, query, passage) → raw score`` that forgets the least recently used.

    Args:
        max_size: entries kept; the least recently used entry goes first when a new one arrives.

    Example:
        >>> cache = ScoreCache(max_size=2)
        >>> cache.scores("model-a", [("q", "p1"), ("q", "p2")], lambda todo: [0.5] * len(todo))
        [0.5, 0.5]
        >>> cache.scores("model-a", [("q", "p1")], lambda todo: 1 / 0)   # a hit: nothing is scored
        [0.5]
    """

    def __init__(self, max_size: int) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be a positive int, got {max_size!r}")
        self.max_size = max_size
        self._entries: OrderedDict[tuple, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (and the hit/miss counts)."""
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def scores(
        self,
        identity: Hashable,
        pairs: Sequence[Pair],
        score: Callable[[List[Pair]], List[float]],
    ) -> List[float]:
        """Scores of ``pairs`` in input order; only pairs not cached go to ``score``, once each.

        A pair is ``(query, passage)``, or ``(query, passage, passage_token_limit)`` when a request
        caps its passages (the limit is part of the key: it changes the score).

        ``score`` receives the missing pairs (duplicates within the call collapsed) and returns
        their raw scores in the same order. It runs without the lock held, so threads scoring
        different pairs do not wait for each other; two threads missing the same pair at the same
        moment may both score it, with the same result.
        """
        keys = [(identity, *pair) for pair in pairs]
        found: List[object] = [None] * len(keys)
        with self._lock:
            for i, key in enumerate(keys):
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[i] = self._entries[key]
        missing = list(dict.fromkeys(key for key, value in zip(keys, found) if value is None))
        computed = score([key[1:] for key in missing]) if missing else []
        if len(computed) != len(missing):
            raise ValueError(f"scored {len(missing)} pairs but got {len(computed)} scores")
        fresh = dict(zip(missing, computed))
        with self._lock:
            self.hits += len(keys) - sum(value is None for value in found)
            self.misses += len(missing)
            for key, value in fresh.items():
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        return [fresh[key] if value is None else value for key, value in zip(keys, found)]
