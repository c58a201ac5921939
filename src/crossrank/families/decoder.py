"""Decoder-LLM rerankers: each family's prompt and its next-token scoring rule.

A decoder reranker reads one prompt per (query, passage) pair and answers with one token; the
score comes from the next-token logits at the last position, without generating anything.

- ``"qwen3"`` (Qwen3-Reranker, any ``qwen2``/``qwen3`` checkpoint): the model card's chat prompt,
  ``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {passage}`` between a fixed system
  prefix and an assistant suffix; score = logit("yes") − logit("no"), so its sigmoid is the model
  card's P(yes). ``max_length`` counts the whole prompt, as the model card's ``max_length`` does.
- ``"bge"`` (bge-reranker-v2-gemma, any ``gemma``/``gemma2`` checkpoint): FlagEmbedding's
  ``FlagLLMReranker`` prompt, ``<bos>A: {query}\\nB: {passage}\\n{prompt}``; score = the "Yes"
  logit. ``max_length`` caps query and passage and the fixed prompt comes on top, as there.

In both, the query keeps at most ``query_max_length`` tokens and the passage is cut to fill the
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

_FORMAT_OF_MODEL_TYPE = {"qwen2": "qwen3", "qwen3": "qwen3", "gemma": "bge", "gemma2": "bge"}

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)


def is_causal_lm(config) -> bool:
    """True when ``config`` describes a decoder LLM checkpoint (``*ForCausalLM``).

    The declared architectures decide; a ``Qwen3ForSequenceClassification`` stays a classifier.
    Without them, the model type does.
    """
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(name.endswith("ForCausalLM") for name in architectures)
    return getattr(config, "model_type", None) in _FORMAT_OF_MODEL_TYPE


def detect_prompt_format(config, tokenizer, prompt_format: Optional[str], name: str) -> str:
    """The prompt family of a decoder checkpoint: ``prompt_format`` if given, else detected."""
    if prompt_format is not None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS} or None, got {prompt_format!r}"
            )
        return prompt_format
    model_type = getattr(config, "model_type", None)
    if model_type in _FORMAT_OF_MODEL_TYPE:
        return _FORMAT_OF_MODEL_TYPE[model_type]
    # Qwen's chat markers are special tokens of its tokenizer, and the answers are single tokens
    special, vocab = tokenizer.get_added_vocab(), tokenizer.get_vocab()
    if (
        all(t in special for t in ("<|im_start|>", "<|im_end|>"))
        and "yes" in vocab
        and "no" in vocab
    ):
        return "qwen3"
    raise ValueError(
        f"model={name!r} is a decoder LLM of type {model_type!r} whose prompt crossrank cannot "
        "tell; pass prompt_format='qwen3' (Qwen3-Reranker style, yes/no) or 'bge' "
        "(bge-reranker-v2-gemma style, 'Yes')."
    )


class PromptEncoder(Encoder):
    """Encode (query, passage) pairs into decoder prompts, without padding.

    ``label_token_ids`` are the next-token ids the score reads: ``[no, yes]`` for ``"qwen3"``
    (scored ``yes − no`` like a 2-logit head), ``[Yes]`` for ``"bge"`` (like a 1-logit head).

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
        else:
            self.instruction = BGE_PROMPT if instruction is None else instruction
            self.query_max_length = min(query_max_length or max_length * 3 // 4, max_length - 1)
            self._sep = self._ids("\n")
            self._prompt = self._ids(self.instruction)
            bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
            # FlagLLMReranker puts <bos> first unless the tokenizer pads with it
            self._bos = [bos] if bos is not None and bos != pad else []
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
        return self._bge_parts(queries, passages, max_length)

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
        unique = list(dict.fromkeys(queries))
        with self._lock:
            query_ids = self.tokenizer(
                ["A: " + q for q in unique],
                add_special_tokens=False,
                truncation=True,
                max_length=self.query_max_length,
            )["input_ids"]
        heads = {q: self._bos + ids + self._sep for q, ids in zip(unique, query_ids)}
        tail = self._sep + self._prompt
        texts = ["B: " + p for p in passages]
        parts = []
        for query, (ids, offsets) in zip(queries, zip(*self._tokenize(texts, max_length))):
            head = heads[query]
            marker = _first_token_from(offsets, len("B:"))
            first = len(head) - len(self._sep)  # <bos> + query
            # FlagLLMReranker: the passage keeps max_length tokens, and query + passage together
            # keep max_length + len(prompt) (its `encode_max_length` less the separator).
            room = min(self.max_length, self.max_length + len(self._prompt) - first) - marker
            parts.append((head + ids[:marker], ids[marker:], tail, max(room, 1)))
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


def label_token_ids(tokenizer, prompt_format: str) -> List[int]:
    """The next-token ids a score reads: ``[no, yes]`` for ``"qwen3"``, ``[Yes]`` for ``"bge"``."""
    if prompt_format == "bge":
        return tokenizer("Yes", add_special_tokens=False)["input_ids"][:1]
    ids = []
    for token in ("no", "yes"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no {token!r} token, which the {prompt_format!r} prompt "
                "format scores; is this a Qwen3-Reranker checkpoint?"
            )
        ids.append(token_id)
    return ids


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

    @staticmethod
    def auto_class():
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> PromptEncoder:
        return PromptEncoder(
            self.tokenizer, self.prompt_format, max_length, query_max_length, self.instruction
        )

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return label_logits(model, batch, self.label_ids)
