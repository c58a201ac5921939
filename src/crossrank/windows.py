"""Long documents as overlapping token windows, scored by their best window (MaxP).

A passage that does not fit next to the query is cut into windows of ``room`` tokens (what the
model has left after the query and the prompt); consecutive windows share ``overlap`` tokens, the
same meaning ``stride`` has in Hugging Face tokenizers (``Encoding.truncate(max_length, stride)``).
A document's score is the maximum over its windows (Dai & Callan, 2019, "MaxP").
"""

from __future__ import annotations

from typing import List, Sequence, TypeVar

T = TypeVar("T")

LONG_DOCUMENT_MODES = ("truncate", "maxp")


def window_overlap(stride: int, room: int) -> int:
    """The overlap actually used: ``stride``, but at most half a window so that windows advance.

    >>> window_overlap(128, 500), window_overlap(128, 100)
    (128, 50)
    """
    return max(0, min(stride, room // 2))


def split_windows(tokens: Sequence[T], room: int, overlap: int) -> List[List[T]]:
    """Cut ``tokens`` into windows of ``room`` tokens, consecutive windows sharing ``overlap``.

    The first window is the passage as ``"truncate"`` keeps it; the last one ends at the last token.
    A passage that fits is a single window.

    >>> split_windows(list(range(10)), room=4, overlap=1)
    [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    """
    if room < 1:
        raise ValueError(f"a window must hold at least one token, got room={room}")
    if not 0 <= overlap < room:
        raise ValueError(f"overlap must be in [0, {room}), got {overlap}")
    tokens = list(tokens)
    windows = [tokens[:room]]
    start = 0
    while start + room < len(tokens):
        start += room - overlap
        windows.append(tokens[start : start + room])
    return windows


def max_per_document(scores: Sequence[float], owners: Sequence[int], count: int) -> List[float]:
    """The best window score of each of ``count`` documents; ``owners[i]`` owns ``scores[i]``.

    >>> max_per_document([0.1, 0.7, 0.3], owners=[0, 0, 1], count=2)
    [0.7, 0.3]
    """
    if len(scores) != len(owners):
        raise ValueError(f"{len(scores)} window scores for {len(owners)} windows")
    best: List[float] = [float("-inf")] * count
    for owner, score in zip(owners, scores):
        if score > best[owner]:
            best[owner] = score
    return best
