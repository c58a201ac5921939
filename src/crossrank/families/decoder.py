"""Decoder-LLM rerankers: each family's prompt and its next-token scoring rule.

A decoder reranker reads one prompt per (query, passage) pair and answers with one token; the
score comes from the next-token logits at the last position, without generating anything. The
prompt formats' texts, label tokens and detection live in :mod:`crossrank.families.prompts`.

- ``"qwen3"`` (Qwen3-Reranker, any ``qwen3`` checkpoint): the model card's chat prompt,
  ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {passage}`` between a fixed system
  prefix and an assistant suffix; score = logit("yes") − logit("no"), so its sigmoid is the model
  card's P(yes). ``max_length`` counts the whole prompt, as the model card's ``max_length`` does.
- ``"bge"`` (bge-reranker-v2-gemma, any ``gemma``/``gemma2`` checkpoint): FlagEmbedding's
  ``FlagLLMReranker`` prompt, ``<bos>A: {query}\\nB: {passage}\\n{prompt}``; score = the "Yes"
  logit. ``max_length`` caps query and passage and the fixed prompt comes on top, as there.
- ``"mxbai"`` (mxbai-rerank-base-v2 / -large-v2, ``qwen2`` checkpoints, chosen with
  ``prompt_format="mxbai"``): the ``mxbai-rerank`` package's ``MxbaiRerankV2`` prompt, a chat
  prefix, ``[instruction: {instruction}\\n]query: {query}\\ndocument: {passage}\\n{task}`` and
  an assistant suffix; score = logit("1") − logit("0"). ``max_length`` caps query and passage
  and the fixed prompt comes on top, as there.

In all, the query keeps at most ``query_max_length`` tokens and the passage is cut to fill the
rest (or split into windows, see :mod:`crossrank.windows`).
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..settings import PROMPT_FORMATS
from .base import Encoder, Feature, Limits, ModelFamily
from .prompts import (  # noqa: F401 - the prompt texts and helpers are importable from here too
    BGE_PROMPT,
    MXBAI_PREFIX,
    MXBAI_SUFFIX,
    MXBAI_TASK,
    QWEN3_INSTRUCTION,
    QWEN3_PREFIX,
    QWEN3_SUFFIX,
    detect_prompt_format,
    is_causal_lm,
    label_token_ids,
)


class PromptEncoder(Encoder):
    """Encode (query, passage) pairs into decoder prompts, without padding.

    ``label_token_ids`` are the next-token ids the score reads: ``[no, yes]`` for ``"qwen3"``
    (scored ``yes − no`` like a 2-logit head), ``[0, 1]`` for ``"mxbai"`` (``1 − 0``), ``[Yes]``
    for ``"bge"`` (like a 1-logit head).

    >>> encoder = PromptEncoder(tokenizer, "qwen3", max_length=512)      # doctest: +SKIP
    >>> encoder.encode(["what is a panda?"], ["The giant panda ..."])     # doctest: +SKIP
    [{'input_ids': [151644, 8948, ...]}]
    """

    def __init__(
        self,
        tokenizer,
        prompt_format: str,
        max_length: int = 512,
        query_max_length: Optional[int] = None,
        instruction: Optional[str] = None,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                "decoder LLM rerankers need a fast (Rust) tokenizer: crossrank reads character "
                "offsets to place the passage; install `tokenizers` and save a tokenizer.json"
            )
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}"
            )
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.max_length = max_length
        self._lock = threading.Lock()  # fast tokenizers keep truncation state; calls take turns
        if prompt_format == "qwen3":
            self.instruction = QWEN3_INSTRUCTION if instruction is None else instruction
            self._prefix = self._ids(QWEN3_PREFIX)
            self._suffix = self._ids(QWEN3_SUFFIX)
            fixed = len(self._prefix) + len(self._suffix) + len(self._ids(self._body("", "")))
            if max_length - fixed < 8:
                raise ValueError(
                    f"max_length={max_length} leaves no room for query and passage: the "
                    f"Qwen3-Reranker prompt alone takes {fixed} tokens"
                )
            room = max_length - fixed
            self.query_max_length = min(query_max_length or room * 3 // 4, room - 1)
            self.label_token_ids = label_token_ids(tokenizer, prompt_format)
        elif prompt_format == "bge":
            self.instruction = BGE_PROMPT if instruction is None else instruction
            self.query_max_length = min(query_max_length or max_length * 3 // 4, max_length - 1)
            self._sep = self._ids("\n")
            self._prompt = self._ids(self.instruction)
            bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
            # FlagLLMReranker puts <bos> first unless the tokenizer pads with it
            self._bos = [bos] if bos is not None and bos != pad else []
            self.label_token_ids = label_token_ids(tokenizer, prompt_format)
        else:  # "mxbai": MxbaiRerankV2 has no default instruction (None: no instruction line)
            self.instruction = instruction
            self.query_max_length = min(query_max_length or max_length * 3 // 4, max_length - 1)
            self._sep = self._ids("\n")
            self._prefix = self._ids(MXBAI_PREFIX)
            self._tail = self._sep + self._ids(MXBAI_TASK) + self._ids(MXBAI_SUFFIX)
            self.label_token_ids = label_token_ids(tokenizer, prompt_format)

    # ------------------------------------------------------------------ public

    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]:
        """One prompt per pair, the passage cut to what fits (and to its limit, if any)."""
        passages = self._cut_passages(passages, passage_limits)
        return [
            {"input_ids": head + body[:room] + tail}
            for head, body, tail, room in self._parts(queries, passages, self.max_length)
        ]

    def _window_parts(self, queries, passages, passage_limits):
        passages = self._cut_passages(passages, passage_limits)
        for head, body, tail, room in self._parts(queries, passages, None):
            yield body, room, functools.partial(_prompt_feature, head, tail)

    def _cut_passages(self, passages: Sequence[str], limits: Limits) -> Sequence[str]:
        """Each passage cut after its first ``limits[i]`` tokens, counted on the passage alone.

        In the prompt a passage is tokenized in context (after ``B: `` or ``<Document>: ``), where
        its first tokens can differ from its own; counting on the bare text keeps the cut where a
        client counting the document's tokens expects it.
        """
        if limits is None or all(limit is None for limit in limits):
            return passages
        todo = [i for i, limit in enumerate(limits) if limit is not None]
        _, offsets = self._tokenize([passages[i] for i in todo], None)
        cut = list(passages)
        for i, spans in zip(todo, offsets):
            if len(spans) > limits[i]:
                cut[i] = passages[i][: spans[limits[i] - 1][1]]
        return cut

    # ------------------------------------------------------------------ prompt parts

    def _parts(self, queries, passages, max_length) -> List[Tuple[list, list, list, int]]:
        """Per pair: (tokens before the passage, passage tokens, tokens after, passage room).

        A passage's marker (bge's ``B:``) sits in the head so that every window carries it.
        """
        if self.prompt_format == "qwen3":
            return self._qwen3_parts(queries, passages, max_length)
        if self.prompt_format == "bge":
            return self._bge_parts(queries, passages, max_length)
        return self._mxbai_parts(queries, passages, max_length)

    def _body(self, query: str, passage: str) -> str:
        return f"<Instruct>: {self.instruction}\n<Query>: {query}\n<Document>: {passage}"

    def _qwen3_parts(self, queries, passages, max_length):
        capped = {q: self._cap_query(q) for q in dict.fromkeys(queries)}
        texts = [self._body(capped[q], p) for q, p in zip(queries, passages)]
        # The model card tokenizes the body as one text; the passage starts after "<Document>:".
        starts = [len(self._body(capped[q], "")) - 1 for q in queries]
        parts = []
        for ids, offsets, start in zip(*self._tokenize(texts, max_length), starts):
            cut = _first_token_from(offsets, start)
            room = self.max_length - len(self._prefix) - len(self._suffix) - cut
            parts.append((self._prefix + ids[:cut], ids[cut:], self._suffix, max(room, 1)))
        return parts

    def _bge_parts(self, queries, passages, max_length):
        def room(query_length: int, marker: int) -> int:
            # FlagLLMReranker: the passage keeps max_length tokens, and query + passage together
            # keep max_length + len(prompt) (its `encode_max_length` less the separator).
            first = len(self._bos) + query_length
            return min(self.max_length, self.max_length + len(self._prompt) - first) - marker

        return self._marked_parts(
            [("A: " + q) for q in queries],
            "B: ",
            passages,
            max_length,
            self._bos,
            self._sep + self._prompt,
            room,
        )

    def _mxbai_parts(self, queries, passages, max_length):
        def room(query_length: int, marker: int) -> int:
            # MxbaiRerankV2: query + "\n" + "document: " + passage keep max_length tokens (its
            # prepare_for_model with truncation="only_second"); the fixed prompt comes on top.
            return self.max_length - query_length - len(self._sep) - marker

        line = f"instruction: {self.instruction}\n" if self.instruction else ""
        return self._marked_parts(
            [f"{line}query: {q}" for q in queries],
            "document: ",
            passages,
            max_length,
            self._prefix,
            self._tail,
            room,
        )

    def _marked_parts(self, queries, marker, passages, max_length, start, tail, room_of):
        """Parts of ``start + query + \\n + marker + passage + tail`` prompts (bge, mxbai).

        The query text is tokenized alone and capped at ``query_max_length``; the passage is
        tokenized after its marker, which stays in the head so that every window carries it;
        ``room_of(query tokens, marker tokens)`` is how many passage tokens fit.
        """
        unique = list(dict.fromkeys(queries))
        with self._lock:
            query_ids = self.tokenizer(
                unique, add_special_tokens=False, truncation=True, max_length=self.query_max_length
            )["input_ids"]
        tokens_of = dict(zip(unique, query_ids))
        parts = []
        texts = [marker + p for p in passages]
        for query, (ids, offsets) in zip(queries, zip(*self._tokenize(texts, max_length))):
            own = tokens_of[query]
            cut = _first_token_from(offsets, len(marker.rstrip()))
            head = start + own + self._sep + ids[:cut]
            parts.append((head, ids[cut:], tail, max(room_of(len(own), cut), 1)))
        return parts

    def _cap_query(self, query: str) -> str:
        """Cut the query text at its ``query_max_length``-th token (the model card has no cap)."""
        ids, offsets = self._tokenize([query], self.query_max_length + 1)
        if len(ids[0]) <= self.query_max_length:
            return query
        return query[: offsets[0][self.query_max_length][0]]

    def _tokenize(self, texts: List[str], max_length: Optional[int]):
        if not texts:
            return [], []
        limit = {"truncation": True, "max_length": max_length} if max_length else {"verbose": False}
        with self._lock:
            out = self.tokenizer(
                texts, add_special_tokens=False, return_offsets_mapping=True, **limit
            )
        return out["input_ids"], out["offset_mapping"]

    def _ids(self, text: str) -> List[int]:
        with self._lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _prompt_feature(head: List[int], tail: List[int], window: List[int]) -> Feature:
    return {"input_ids": head + window + tail}


def _first_token_from(offsets: Sequence[Tuple[int, int]], char: int) -> int:
    """Index of the first token that starts at or after character ``char``."""
    for index, (start, _end) in enumerate(offsets):
        if start >= char:
            return index
    return len(offsets)


def label_logits(model, batch: Dict[str, torch.Tensor], token_ids: List[int]) -> torch.Tensor:
    """Next-token logits of ``token_ids`` at the last position of a left-padded batch.

    Positions count from each row's first real token, so a padded row sees what it would alone.
    Only the last position's logits are computed where the model allows it (``logits_to_keep``).
    """
    mask = batch["attention_mask"]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    kwargs = {_keep_argument(type(model)): 1} if _keep_argument(type(model)) else {}
    logits = model(**batch, position_ids=position_ids, use_cache=False, **kwargs).logits
    return logits[:, -1, token_ids].float()


@functools.cache
def _keep_argument(model_class) -> Optional[str]:
    parameters = inspect.signature(model_class.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):  # transformers >= 4.50, older
        if name in parameters:
            return name
    return None


class DecoderFamily(ModelFamily):
    """Decoder LLM rerankers: a prompt per pair, left padding, label-token logits; torch only."""

    name = "decoder LLM reranker"
    padding_side = "left"  # decoders read the last position
    auto_class_name = "AutoModelForCausalLM"

    def __init__(
        self,
        tokenizer,
        config,
        model_name: str,
        prompt_format: Optional[str] = None,
        instruction: Optional[str] = None,
    ) -> None:
        super().__init__(tokenizer, config, model_name)
        self.prompt_format = detect_prompt_format(config, tokenizer, prompt_format, model_name)
        self.instruction = instruction
        self.label_ids = label_token_ids(tokenizer, self.prompt_format)

    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> PromptEncoder:
        return PromptEncoder(
            self.tokenizer, self.prompt_format, max_length, query_max_length, self.instruction
        )

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return label_logits(model, batch, self.label_ids)
