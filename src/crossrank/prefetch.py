"""Run a generator ahead on a worker thread, so its CPU work overlaps the consumer's.

On an accelerator the pipeline's consumer mostly waits for the device (a forward, the copy of
its logits back), with the GIL released; meanwhile a worker tokenizes and collates the next
batches (the Rust tokenizer and torch's copies release the GIL too). On a CPU the forward already
takes every core, so the pipeline does not prefetch there.

>>> list(prefetched(iter(range(5)), depth=2))
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    """An exception the producer raised, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a worker thread computes up to ``depth`` of them ahead.

    An exception in ``items`` is raised in the consumer at the point it would have come; a
    consumer that stops early (``break``, an exception, ``close()``) stops the worker too, which
    then computes at most the item it is on.

    >>> def boom():
    ...     yield 1
    ...     raise ValueError("bad pair")
    >>> stream = prefetched(boom())
    >>> next(stream)
    1
    >>> next(stream)
    Traceback (most recent call last):
    ...
    ValueError: bad pair
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(error))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="crossrank-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
