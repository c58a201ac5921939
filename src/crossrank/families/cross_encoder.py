"""Pair encoding the way FlagReranker does it, on transformers 4 and 5 alike.

The query is tokenized alone and capped (``query_max_length``, by default 3/4 of ``max_length``);
the passage fills what is left (``only_second`` truncation); then the tokenizer's own template adds
the special tokens (``[CLS] q [SEP] p [SEP]``, ``<s> q </s></s> p </s>``, …). FlagReranker builds the
pair with ``tokenizer.prepare_for_model``, which transformers 5 removed from fast tokenizers; here
the same template comes from the fast tokenizer's post-processor, with ``prepare_for_model`` as the
route for slow (Python) tokenizers.
"""

from __future__ import annotations

import functools
import threading
from array import array
from itertools import zip_longest
from typing import Dict, Iterator, List, Optional, Sequence

import torch

from ..errors import ModelLoadError
from .base import Encoder, Feature, Limits, ModelFamily

# Passages are tokenized this many at a time, so that the tokenizer's full Encoding objects
# (tokens, offsets, masks) never exist for more than a slice of the input at once.
TOKENIZE_SLICE = 64


class PairEncoder(Encoder):
    """Encode (query, passage) pairs into model inputs without padding.

    >>> encoder = PairEncoder(tokenizer, max_length=512)          # doctest: +SKIP
    >>> encoder.encode(["what is a panda?"], ["The giant panda ..."])  # doctest: +SKIP
    [{'input_ids': array('i', [101, ...]), 'token_type_ids': array('b', [0, ..., 1])}]
    """

    def __init__(self, tokenizer, max_length: int = 512, query_max_length: Optional[int] = None):
        if max_length < 16:
            raise ValueError(f"max_length must be at least 16 tokens, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
        self.num_special = tokenizer.num_special_tokens_to_add(pair=True)
        # FlagReranker's default is 3/4 of max_length; a longer cap never leaves the passage (and
        # the special tokens) without room, which would overflow the model's positions.
        wanted = query_max_length if query_max_length else max_length * 3 // 4
        self.query_max_length = max(1, min(wanted, max_length - self.num_special - 1))
        self._fast = bool(getattr(tokenizer, "is_fast", False))
        # A fast tokenizer's truncation settings live in shared Rust state that each call rewrites;
        # concurrent calls fail with "Already borrowed", so tokenization takes turns.
        self._lock = threading.Lock()

    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]:
        """Encode ``queries[i]`` with ``passages[i]``; equal queries are tokenized once a slice.

        ``passage_limits[i]`` (None: no cap) keeps at most that many of passage ``i``'s tokens,
        as if the passage had been cut after them (Cohere's ``max_tokens_per_doc``).
        """
        return [
            self._pair(query, passage)
            for query, passage in self._tokenized(
                queries, passages, self.max_length, passage_limits
            )
        ]

    def _window_parts(self, queries, passages, passage_limits):
        pairs = self._tokenized(queries, passages, None, passage_limits)
        for query, passage in pairs:
            query_length = len(query.ids) if self._fast else len(query)
            room = max(self.max_length - query_length - self.num_special, 1)
            yield passage, room, functools.partial(self._pair, query)

    def _tokenized(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        max_length: Optional[int],
        passage_limits: Limits = None,
    ) -> Iterator[tuple]:
        """(query tokens, passage tokens) pair by pair, tokenizing a slice at a time."""
        for start in range(0, len(passages), TOKENIZE_SLICE):
            stop = start + TOKENIZE_SLICE
            chunk_queries = list(queries[start:stop])
            unique = list(dict.fromkeys(chunk_queries))
            query_tokens = dict(zip(unique, self._tokenize(unique, self.query_max_length)))
            chunk_passages = self._tokenize(list(passages[start:stop]), max_length)
            limits = passage_limits[start:stop] if passage_limits is not None else ()
            for query, passage, limit in zip_longest(chunk_queries, chunk_passages, limits):
                yield query_tokens[query], self._cut(passage, limit)

    def _cut(self, passage, limit: Optional[int]):
        """The passage's first ``limit`` tokens (all of them for None)."""
        if limit is None:
            return passage
        if not self._fast:
            return passage[:limit]
        if len(passage.ids) > limit:
            passage.truncate(limit)  # a fresh encoding each: in place is safe
        return passage

    def _split(self, passage, room: int, overlap: int) -> list:
        if not self._fast:
            return super()._split(passage, room, overlap)
        if len(passage.ids) <= room:
            return [passage]  # overflowing may hold what a passage limit cut off
        # the tokenizers library's own windows: the same rule as crossrank.windows
        passage.truncate(room, stride=overlap)
        return [passage, *passage.overflowing]

    def _tokenize(self, texts: List[str], max_length: Optional[int]) -> list:
        if not texts:
            return []
        # max_length=None keeps whole passages, to be cut into windows
        limit = {"truncation": True, "max_length": max_length} if max_length else {"verbose": False}
        with self._lock:
            out = self.tokenizer(texts, add_special_tokens=False, **limit)
        if self._fast:
            return out.encodings
        return out["input_ids"]

    def _pair(self, query, passage) -> Feature:
        if self._fast:
            return self._pair_fast(query, passage)
        item = self.tokenizer.prepare_for_model(
            query, passage, truncation="only_second", max_length=self.max_length, padding=False
        )
        return self._feature(item["input_ids"], item.get("token_type_ids"))

    def _pair_fast(self, query, passage) -> Feature:
        # Encoding.truncate works in place: copy-free because every passage encoding is fresh,
        # while the shared query encoding is never truncated here (it was capped at tokenization).
        room = self.max_length - len(query.ids) - self.num_special
        if len(passage.ids) > room:
            passage.truncate(max(room, 0))
        processor = self.tokenizer.backend_tokenizer.post_processor
        if processor is not None:
            merged = processor.process(query, passage, True)
        else:
            merged = type(query).merge([query, passage], True)
        return self._feature(merged.ids, merged.type_ids)

    def _feature(self, ids: Sequence[int], type_ids: Optional[Sequence[int]]) -> Feature:
        # Token ids are kept as compact int arrays (4 bytes a token, not a Python int object each).
        feature: Feature = {"input_ids": array("i", ids)}
        if self.with_token_types:
            feature["token_type_ids"] = array("b", type_ids or [0] * len(ids))
        return feature


class CrossEncoderFamily(ModelFamily):
    """``*ForSequenceClassification`` cross-encoders: ``[CLS] q [SEP] p [SEP]``, a 1- or 2-logit head.

    Runs on torch, ONNX Runtime and OpenVINO. The head size is checked from the config, before
    the weights load.
    """

    name = "cross-encoder"
    padding_side = "right"
    auto_class_name = "AutoModelForSequenceClassification"

    def __init__(self, tokenizer, config, model_name: str) -> None:
        super().__init__(tokenizer, config, model_name)
        num_labels = getattr(config, "num_labels", None)
        if num_labels not in (1, 2):
            raise ModelLoadError(
                f"model={model_name!r} has a classification head with {num_labels} outputs; a "
                "cross-encoder reranker needs 1 (relevance logit) or 2 (not relevant / relevant)."
            )
        self.num_labels = num_labels

    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> PairEncoder:
        return PairEncoder(self.tokenizer, max_length, query_max_length)

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).logits
