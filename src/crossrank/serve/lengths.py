"""TEI's ``truncate: false``: find the (query, text) pairs the served reranker would cut.

Pairs are encoded the way the scorer encodes them (the family's own encoders, asked of the family
object, on a copy of the served tokenizer) twice: at the served lengths and at unbounded ones. A pair is cut when the two
differ; its length is the unbounded encoding's, special tokens included, as TEI counts it.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import List, Optional, Sequence

UNBOUNDED = 1 << 30  # a max_length no text reaches
SLICE = 64  # texts encoded at once


@dataclass(frozen=True)
class TooLong:
    """The first input the served reranker would cut, and how many do not fit."""

    field: str  # "query" or "texts[i]"
    tokens: int  # its tokens, untruncated (the query's own, or the whole pair's)
    limit: int  # query_max_length or max_length
    count: int  # texts that do not fit (0 when the query alone is too long)

    def message(self) -> str:
        """TEI's validation message, then which input and what to do."""
        if self.field == "query":
            what = "`query`"
            where = "the query's own cap, query_max_length"
        else:
            what = "`inputs`"
            more = f"; {self.count} of the texts do not fit" if self.count > 1 else ""
            where = f"{self.field} with the query{more}"
        return (
            f"Input validation error: {what} must have less than {self.limit} tokens. "
            f'Given: {self.tokens} ({where}; send "truncate": true to cut to fit)'
        )


class LengthCheck:
    """Says whether scoring would cut a request's query or texts, without scoring.

    >>> LengthCheck(reranker).check("what is panda?", ["a bear " * 400])   # doctest: +SKIP
    TooLong(field='texts[0]', tokens=807, limit=512, count=1)
    """

    def __init__(self, reranker) -> None:
        missing = [
            name
            for name in ("tokenizer", "encoder", "model_family", "max_length", "long_documents")
            if not hasattr(reranker, name)
        ]
        if missing:
            raise ValueError(
                f"the served reranker ({type(reranker).__name__}) cannot count tokens (it has no "
                f'{", ".join(missing)}); send "truncate": true'
            )
        # a copy: a fast tokenizer's truncation state is shared Rust state, and the scoring
        # thread uses the original at the same time
        self._tokenizer = copy.deepcopy(reranker.tokenizer)
        family = reranker.model_family.with_tokenizer(self._tokenizer)
        self.max_length = int(reranker.max_length)
        self.query_max_length = int(reranker.encoder.query_max_length)
        self.windows = reranker.long_documents != "truncate"  # long texts are split, never cut
        self._served = family.make_encoder(self.max_length, self.query_max_length)
        self._whole = family.make_encoder(UNBOUNDED, UNBOUNDED)
        self._query_capped = family.make_encoder(UNBOUNDED, self.query_max_length)
        self._lock = threading.Lock()  # the three encoders share the copied tokenizer

    def check(self, query: str, texts: Sequence[str], field: str = "texts") -> Optional[TooLong]:
        """None if nothing would be cut; else the query, or the first text, that would be."""
        if not texts:
            return None
        with self._lock:
            whole = _ids(self._whole, [query], texts[:1])[0]
            if whole != _ids(self._query_capped, [query], texts[:1])[0]:
                tokens = len(self._tokenizer(query, add_special_tokens=False)["input_ids"])
                return TooLong("query", tokens, self.query_max_length, 0)
            if self.windows:
                return None
            cut: List[int] = []
            first_tokens = 0
            for start in range(0, len(texts), SLICE):
                chunk = list(texts[start : start + SLICE])
                queries = [query] * len(chunk)
                wholes = _ids(self._whole, queries, chunk)
                for offset, (ids, served) in enumerate(
                    zip(wholes, _ids(self._served, queries, chunk))
                ):
                    if ids != served:
                        if not cut:
                            first_tokens = len(ids)
                        cut.append(start + offset)
        if not cut:
            return None
        return TooLong(f"{field}[{cut[0]}]", first_tokens, self.max_length, len(cut))


def _ids(encoder, queries: List[str], texts: Sequence[str]) -> List[list]:
    return [list(feature["input_ids"]) for feature in encoder.encode(queries, list(texts))]
