"""Sequence-to-sequence rerankers (monoT5, InRanker, RankT5-style): "true"/"false" at step one.

A T5 or mT5 checkpoint fine-tuned as a reranker reads ``Query: {query} Document: {passage}
Relevant:`` and answers ``true`` or ``false``; the score comes from the first decoder step's
logits, without generating anything. The score is logit(``▁true``) − logit(``▁false``), so its
sigmoid (``normalize=True``) is softmax([false, true])[true]: the number `rerankers`' ``T5Ranker``
(and castorini's pygaggle) reports. PyTerrier's ``MonoT5ReRanker`` reports the log of it.

The prompt is tokenized as one text, as `rerankers` does, so a pair that fits ``max_length`` (the
whole input, ``</s>`` included) gets exactly its tokens. One that does not differs on purpose:
`rerankers` cuts the input's end, ``Relevant:`` with it, while here the query keeps at most
``query_max_length`` tokens and the passage is cut (or split into windows, see
:mod:`crossrank.windows`) so that the prompt stays whole, as in every crossrank family.

Not covered: checkpoints trained to answer other words (unicamp-dl's mT5 ``yes``/``no``, ptt5
``sim``/``não``): nothing in their config says so, and their vocabularies also hold ``▁true`` /
``▁false``, so they would be read with the wrong labels; `rerankers` tells them by hub id.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_left
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .base import Encoder, Feature, Limits, ModelFamily

MONOT5_TEMPLATE = "Query: {query} Document: {passage} Relevant:"
# Label pieces as `rerankers` resolves them for monoT5 checkpoints; bare words where a vocabulary
# has no SentencePiece "▁" pieces.
LABELS = (("\u2581false", "\u2581true"), ("false", "true"))
# The T5 family's model types: they read the prompt with a SentencePiece vocabulary.
T5_MODEL_TYPES = ("t5", "mt5", "umt5")


def is_seq2seq_lm(config) -> bool:
    """True when ``config`` describes an encoder-decoder language model (``*ForConditionalGeneration``).

    The declared architectures decide: ``T5ForSequenceClassification`` stays a classifier. Without
    them, an encoder-decoder config of a T5 model type does.

    >>> from transformers import T5Config
    >>> is_seq2seq_lm(T5Config(architectures=["T5ForConditionalGeneration"]))
    True
    >>> is_seq2seq_lm(T5Config(architectures=["T5ForSequenceClassification"]))
    False
    """
    if not getattr(config, "is_encoder_decoder", False):
        return False
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(name.endswith("ForConditionalGeneration") for name in architectures)
    return getattr(config, "model_type", None) in T5_MODEL_TYPES


def label_token_ids(tokenizer, name: str) -> List[int]:
    """``[false, true]`` token ids: the ``▁`` pieces if the vocabulary has both, else bare words."""
    vocab = tokenizer.get_vocab()
    for false, true in LABELS:
        if false in vocab and true in vocab:
            return [vocab[false], vocab[true]]
    raise ValueError(
        f"model={name!r} is a sequence-to-sequence model whose tokenizer has no 'true'/'false' "
        "tokens; crossrank scores monoT5-style rerankers, which answer 'true' or 'false'"
    )


class MonoT5Encoder(Encoder):
    """Encode (query, passage) pairs into monoT5 prompts (``… Relevant: </s>``), without padding.

    >>> encoder = MonoT5Encoder(tokenizer, max_length=512)                  # doctest: +SKIP
    >>> encoder.encode(["what is a panda?"], ["The giant panda ..."])        # doctest: +SKIP
    [{'input_ids': [3, 27569, 10, 125, 19, 3, 9, 2004, 26, 9, 58, ..., 1]}]
    """

    def __init__(self, tokenizer, max_length: int = 512, query_max_length: Optional[int] = None):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                "seq2seq rerankers need a fast (Rust) tokenizer: crossrank reads character "
                "offsets to place the passage; install `tokenizers` and save a tokenizer.json"
            )
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._lock = threading.Lock()  # fast tokenizers keep truncation state; calls take turns
        self._first, self._last = self._special_tokens()
        self._tail_tokens = 0  # at least this many tokens after the passage (" Relevant:")
        empty = self._prompt_parts([""], [""])[0]
        self._tail_tokens = len(empty[2]) - len(self._last)
        fixed = len(empty[0]) + len(empty[2])
        room = max_length - fixed
        if room < 8:
            raise ValueError(
                f"max_length={max_length} leaves no room for query and passage: the monoT5 "
                f"prompt alone takes {fixed} tokens"
            )
        self.query_max_length = min(query_max_length or room * 3 // 4, room - 1)

    # ------------------------------------------------------------------ public

    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]:
        """One prompt per pair, the passage cut to what fits (and to its limit, if any)."""
        return [
            {"input_ids": head + body[:room] + tail}
            for head, body, tail, room in self._parts(queries, passages, passage_limits)
        ]

    def _window_parts(self, queries, passages, passage_limits):
        for head, body, tail, room in self._parts(queries, passages, passage_limits):
            yield body, room, functools.partial(_prompt_feature, head, tail)

    # ------------------------------------------------------------------ prompt parts

    def _parts(self, queries, passages, limits: Limits) -> List[Tuple[list, list, list, int]]:
        """Per pair: (tokens before the passage, passage tokens, tokens after, passage room)."""
        capped = {query: self._cap_query(query) for query in dict.fromkeys(queries)}
        queries = [capped[query] for query in queries]
        if limits is not None and any(limit is not None for limit in limits):
            passages = [
                self._first_tokens(passage, limit) for passage, limit in zip(passages, limits)
            ]
        return [
            (head, body, tail, max(self.max_length - len(head) - len(tail), 1))
            for head, body, tail in self._prompt_parts(queries, passages)
        ]

    def _prompt_parts(self, queries, passages) -> List[Tuple[list, list, list]]:
        """The prompt of each pair tokenized as one text, split where the passage begins and ends.

        A token belongs to the passage when it starts at or after the space before the passage
        and before the space before ``Relevant:`` (SentencePiece puts a space at a word's start);
        ``Relevant:`` keeps its tokens whatever spaces the passage ends with.
        """
        texts, bounds = [], []
        for query, passage in zip(queries, passages):
            before = MONOT5_TEMPLATE.format(query=query, passage="").rsplit(" Relevant:", 1)[0]
            texts.append(MONOT5_TEMPLATE.format(query=query, passage=passage))
            bounds.append((len(before) - 1, len(before) + len(passage)))
        parts = []
        for ids, offsets, (start, end) in zip(*self._tokenize(texts), bounds):
            starts = [span[0] for span in offsets]
            resume = min(bisect_left(starts, end), len(ids) - self._tail_tokens)
            cut = min(bisect_left(starts, start), resume)
            parts.append((self._first + ids[:cut], ids[cut:resume], ids[resume:] + self._last))
        return parts

    def _cap_query(self, query: str) -> str:
        """The query text cut at its ``query_max_length``-th token (counted on the query alone)."""
        return self._first_tokens(query, self.query_max_length)

    def _first_tokens(self, text: str, limit: Optional[int]) -> str:
        """``text`` cut after its first ``limit`` tokens (all of it for None)."""
        if limit is None:
            return text
        ids, offsets = self._tokenize([text])
        if len(ids[0]) <= limit:
            return text
        return text[: offsets[0][limit - 1][1]] if limit > 0 else ""

    def _special_tokens(self) -> Tuple[List[int], List[int]]:
        """The special tokens the tokenizer puts before and after a text (T5: ``</s>`` after)."""
        with self._lock:
            bare = self.tokenizer("a", add_special_tokens=False)["input_ids"]
            full = self.tokenizer("a")["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], full[start + len(bare) :]
        return [], []

    def _tokenize(self, texts: List[str]):
        if not texts:
            return [], []
        with self._lock:
            out = self.tokenizer(
                texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False
            )
        return out["input_ids"], out["offset_mapping"]


def _prompt_feature(head: List[int], tail: List[int], window: List[int]) -> Feature:
    return {"input_ids": head + window + tail}


def first_step_logits(
    model, batch: Dict[str, torch.Tensor], token_ids: List[int], start_id: int
) -> torch.Tensor:
    """Logits of ``token_ids`` at the first decoder step of a right-padded batch, in float32."""
    rows = batch["input_ids"].shape[0]
    start = torch.full((rows, 1), start_id, dtype=torch.long, device=batch["input_ids"].device)
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        decoder_input_ids=start,
        use_cache=False,
    ).logits
    return logits[:, 0, token_ids].float()


class Seq2SeqFamily(ModelFamily):
    """monoT5-style seq2seq rerankers: one prompt per pair, ``[false, true]`` logits; torch only.

    Scored like a 2-logit head, ``true − false``: its sigmoid is `rerankers`' T5Ranker score.
    """

    name = "seq2seq reranker"
    padding_side = "right"  # the encoder masks padding; the decoder reads one fixed start token
    auto_class_name = "AutoModelForSeq2SeqLM"

    def __init__(self, tokenizer, config, model_name: str) -> None:
        super().__init__(tokenizer, config, model_name)
        model_type = getattr(config, "model_type", None)
        if model_type not in T5_MODEL_TYPES:
            raise ValueError(
                f"model={model_name!r} is an encoder-decoder of type {model_type!r}; crossrank "
                f"scores seq2seq rerankers of the T5 family ({', '.join(T5_MODEL_TYPES)}), "
                "monoT5-style"
            )
        start = getattr(config, "decoder_start_token_id", None)
        self.decoder_start_token_id = self.pad_token_id if start is None else start
        self.label_ids = label_token_ids(tokenizer, model_name)

    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> MonoT5Encoder:
        return MonoT5Encoder(self.tokenizer, max_length, query_max_length)

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return first_step_logits(model, batch, self.label_ids, self.decoder_start_token_id)
