"""Cut a text to what the model can use before it is tokenized, so one huge document is cheap.

Only the first ``max_length`` tokens of a (query, text) pair are ever scored, yet tokenizing a
5 MB text takes seconds on the one scoring thread, and every request behind it waits. A token
spans at most ``longest`` visible characters (the longest entry of the tokenizer's vocabulary),
so the first ``max_length`` tokens lie inside the first ``max_length * longest`` visible
characters; the cut keeps :data:`SAFETY` times that (and the invisible characters between), far
beyond where any token the model reads could end, so the scores are the uncut text's.
"""

from __future__ import annotations

import re
from typing import Optional

SAFETY = 4  # the cut's margin over the longest text max_length can use
PAIR_SPECIALS = 4  # [CLS] ... [SEP] ... [SEP]: never more than this many added tokens
# Characters a tokenizer may drop or fold into a neighbour (spaces, controls, combining marks,
# zero-width and direction marks, variation selectors, BOM, U+FFFD): not counted as visible.
_INVISIBLE = re.compile(
    "[\\s\x00-\x1f\x7f-\x9f\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\ufe00-\ufe0f\ufe20-\ufe2f\ufeff\ufffd]+"
)


def text_bound(reranker) -> Optional[int]:
    """Visible characters of a text worth tokenizing for ``reranker``, or None (never cut).

    None when the reranker scores long texts in windows (``long_documents`` other than
    ``"truncate"``: every part counts) or says nothing of its tokenizer.

    >>> text_bound(Reranker("BAAI/bge-reranker-base"))                   # doctest: +SKIP
    41616
    """
    if getattr(reranker, "long_documents", "truncate") != "truncate":
        return None
    tokenizer = getattr(reranker, "tokenizer", None)
    max_length = getattr(reranker, "max_length", None)
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if not callable(get_vocab) or not isinstance(max_length, int):
        return None
    vocab = get_vocab()
    if not vocab:
        return None
    longest = max(len(token) for token in vocab)
    return SAFETY * (max_length + PAIR_SPECIALS) * max(longest, 1)


def cut_text(text: str, bound: Optional[int]) -> str:
    """``text`` up to its ``bound``-th visible character (all of it when shorter or no bound).

    >>> cut_text("a  b  c  d", 2)
    'a  b '
    """
    if bound is None or len(text) <= bound:
        return text
    end, visible = 0, 0
    while visible < bound and end < len(text):
        # at least bound - visible more characters are needed; doubling bounds the rounds when
        # a text is mostly invisible
        step = max(bound - visible, end - visible)
        piece = text[end : end + step]
        visible += len(_INVISIBLE.sub("", piece))
        end += len(piece)
    return text[:end]
