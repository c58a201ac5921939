"""Bounded retries for Ray Data actors: a block that crashes its actor every time stops the job.

Ray Data restarts a dead actor and retries its tasks, by default forever, so a block that kills
the process each time (a native crash, an out-of-memory kill) would never end the job. Each run of
a block is recorded in a small bookkeeping actor as it begins and ends; a run that never ended
crashed. The run after ``max_retries + 1`` crashes raises :class:`PoisonBlockError` naming the
block instead of scoring it (a Python error, which Ray does not retry). A block that merely waited
in an actor's queue when another block crashed it never began, so it is not counted.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Optional


class PoisonBlockError(RuntimeError):
    """A block crashed its actor on each of its tries; the job stops instead of retrying it."""


class BlockRuns:
    """Bookkeeping actor (no CPU): runs of each block that began and have not ended."""

    def __init__(self) -> None:
        self._open: Dict[str, int] = {}

    def begin(self, key: str) -> int:
        """Record that a run of ``key`` begins; return how many runs of it began and never ended."""
        self._open[key] = self._open.get(key, 0) + 1
        return self._open[key]

    def end(self, key: str) -> None:
        self._open.pop(key, None)


def start_block_runs(ray) -> Any:
    """A new bookkeeping actor for one ``rerank_dataset`` call."""
    return ray.remote(num_cpus=0)(BlockRuns).remote()


class RunGuard:
    """Inside a scoring actor: counts each block's runs and refuses one that crashed too often.

    A block is known by its content (a hash of its pairs): the task id Ray reports changes
    from one try to the next.
    """

    def __init__(self, runs, max_retries: int) -> None:
        self.runs, self.max_retries = runs, max_retries

    def begin(self, table, queries, texts, describe) -> Optional[str]:
        """Record this run; raise PoisonBlockError when its block already crashed too often."""
        import ray

        key = block_key(queries, texts)
        try:
            began = ray.get(self.runs.begin.remote(key), timeout=60)
        except Exception:  # bookkeeping lost: Ray's max_task_retries still bounds the job
            return None
        crashed = began - 1
        if crashed > self.max_retries:
            raise PoisonBlockError(block_message(table, crashed, self.max_retries, describe))
        return key

    def end(self, key: Optional[str]) -> None:
        if key is not None:
            self.runs.end.remote(key)  # no need to wait


def block_key(queries, texts) -> str:
    """A block's identity across retries: a hash of its (query, text) pairs, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for query, text in zip(queries, texts):
        for part in (query, text):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
    return f"{len(texts)}:{digest.hexdigest()}"


def block_message(table, crashed: int, max_retries: int, describe) -> str:
    """One line: which rows, how often they crashed, what to do."""
    rows = table.num_rows
    first = describe(table, 0)
    last = f", last row {describe(table, rows - 1)}" if rows > 1 else ""
    return (
        f"a block of {rows} rows crashed its actor on each of its {crashed} tries "
        f"(max_retries={max_retries}): retries exhausted, the job stops. First row {first}{last}. "
        "Score these rows on their own to find the one at fault and drop it (ds.filter), or raise "
        "max_retries if the crashes were not caused by the rows"
    )
