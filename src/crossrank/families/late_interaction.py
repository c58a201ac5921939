"""Late-interaction (ColBERT) rerankers: MaxSim over token embeddings, as PyLate computes it.

A ColBERT checkpoint (PyLate's ``models.ColBERT``, e.g. GTE-ModernColBERT-v1; see
:mod:`~crossrank.families.colbert_checkpoint`) encodes the query and the passage *separately*:

- query: ``[CLS] [Q] tokens [SEP]`` cut to ``query_length`` tokens and, with query expansion,
  padded to ``query_length`` with ``[MASK]`` tokens whose embeddings count (the model attends to
  them only with ``attend_to_expansion_tokens``);
- passage: ``[CLS] [D] tokens [SEP]`` cut to ``document_length`` tokens (or ``max_length`` where
  that is less); punctuation (``skiplist_words``) is encoded but not scored;
- every token embedding is projected (``Dense``) and L2-normalized;
- score = sum over query tokens of the best dot product with a scored passage token (MaxSim).

The prefix goes right after the first token, texts are stripped (and lower-cased where the
checkpoint's ``sentence_bert_config.json`` says so), exactly as PyLate does. One difference on
purpose: PyLate's ``rank.rerank`` pads a query's candidates to a common length with zero vectors
that take part in the max, so a short passage's per-token best similarity is never below 0 there;
here a passage is scored on its own tokens only, so its score does not depend on its neighbours.

A pair travels through the generic pipeline as one feature: the query's tokens then the passage's,
with ``token_type_ids`` holding each token's role (:data:`QUERY`, :data:`EXPANSION`,
:data:`DOCUMENT`, :data:`SKIPPED`); :meth:`LateInteractionFamily.forward` splits them again,
encodes each distinct query of a batch once and the passages side by side, and returns MaxSim.
"""

from __future__ import annotations

import functools
import threading
from array import array
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ..errors import ModelLoadError
from .base import Encoder, Feature, Limits, ModelFamily, WindowParts
from .colbert_checkpoint import ColbertModel, ColbertSettings, read_colbert_settings

# Token roles, carried in a feature's token_type_ids (the model itself gets no token types).
QUERY, EXPANSION, DOCUMENT, SKIPPED = 0, 1, 2, 3
TOKENIZE_SLICE = 64  # texts tokenized at once


def special_tokens_around(tokenizer) -> Tuple[List[int], List[int]]:
    """The ids a tokenizer puts before and after a single text (``[CLS]`` / ``[SEP]``, ...)."""
    inner = tokenizer("a", add_special_tokens=False)["input_ids"]
    outer = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(outer) - len(inner) + 1):
        if outer[start : start + len(inner)] == inner:
            return list(outer[:start]), list(outer[start + len(inner) :])
    raise ModelLoadError("the tokenizer's special tokens around a single text cannot be told")


class LateInteractionEncoder(Encoder):
    """Encodes (query, passage) pairs as query tokens then passage tokens, with their roles.

    >>> encoder = family.encoder(max_length=512)                          # doctest: +SKIP
    >>> feature = encoder.encode(["what is a panda?"], ["The giant panda"])[0]  # doctest: +SKIP
    >>> list(feature["token_type_ids"])                                   # doctest: +SKIP
    [0, 0, 0, 0, 0, 0, 0, 1, 1, ..., 2, 2, 2, 2, 2]
    """

    def __init__(self, family: LateInteractionFamily, max_length: int, query_max_length) -> None:
        settings = family.settings
        self.tokenizer = family.tokenizer
        self.settings = settings
        self.query_prefix_id, self.document_prefix_id = family.prefix_ids
        self.head, self.tail = family.special_ids
        self.skiplist = family.skiplist
        self.expansion_id = family.expansion_id
        self.max_length = max_length
        self.query_max_length = query_max_length or settings.query_length
        self.document_max_length = min(max_length, settings.document_length)
        self.query_room = self._room(self.query_max_length, self.query_prefix_id)
        self.document_room = self._room(self.document_max_length, self.document_prefix_id)
        # Query expansion pads to the checkpoint's query length (a longer query_max_length keeps
        # more of a long query but does not pad short ones further).
        self.padded_query_length = settings.query_length if settings.do_query_expansion else 0
        self._lock = threading.Lock()  # a fast tokenizer's truncation state is shared

    def _room(self, length: int, prefix_id: Optional[int]) -> int:
        used = len(self.head) + len(self.tail) + (prefix_id is not None)
        if length - used < 1:
            raise ValueError(
                f"a length of {length} tokens leaves no room for text next to the {used} special "
                "tokens of a ColBERT input; pass a larger max_length / query_max_length"
            )
        return length - used

    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]:
        """One feature per pair: the (shared) query tokens, then the passage's; each query of a
        slice is tokenized once. ``passage_limits[i]`` keeps at most that many passage tokens."""
        parts = self._pairs(queries, passages, passage_limits, self.document_room)
        return [feature_of(tokens[:room]) for tokens, room, feature_of in parts]

    def _window_parts(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits
    ) -> Iterator[WindowParts]:
        return self._pairs(queries, passages, passage_limits, None)

    def _pairs(self, queries, passages, limits, cut: Optional[int]) -> Iterator[WindowParts]:
        """Per pair: its passage tokens (cut to ``cut`` and its limit), the room, its feature."""
        room = self.document_room
        for start in range(0, len(passages), TOKENIZE_SLICE):
            chunk = list(queries[start : start + TOKENIZE_SLICE])
            distinct = list(dict.fromkeys(chunk))
            tokenized = self._tokenize(distinct, self.query_room)
            encoded = dict(zip(distinct, map(self._query, tokenized)))
            texts = list(passages[start : start + TOKENIZE_SLICE])
            for offset, (query, passage) in enumerate(zip(chunk, self._tokenize(texts, cut))):
                limit = limits[start + offset] if limits is not None else None
                if limit is not None:
                    passage = passage[:limit]
                yield passage, room, functools.partial(self._feature, *encoded[query])

    def _feature(self, query_ids: List[int], query_roles: List[int], passage) -> Feature:
        ids = self._with_prefix(passage, self.document_prefix_id)
        roles = [SKIPPED if token in self.skiplist else DOCUMENT for token in ids]
        return {
            "input_ids": array("i", query_ids + ids),
            "token_type_ids": array("b", query_roles + roles),
        }

    def _tokenize(self, texts: List[str], room: Optional[int]) -> List[List[int]]:
        if not texts:
            return []
        texts = [str(text).strip() for text in texts]  # sentence-transformers strips, PyLate too
        if self.settings.do_lower_case:
            texts = [text.lower() for text in texts]
        cut = {"truncation": True, "max_length": room} if room else {"verbose": False}
        with self._lock:
            return self.tokenizer(texts, add_special_tokens=False, **cut)["input_ids"]

    def _with_prefix(self, tokens: List[int], prefix_id: Optional[int]) -> List[int]:
        ids = self.head + list(tokens) + self.tail
        if prefix_id is not None:  # PyLate inserts it after the first token, whatever that is
            ids.insert(1, prefix_id)
        return ids

    def _query(self, tokens: List[int]) -> Tuple[List[int], List[int]]:
        ids = self._with_prefix(tokens[: self.query_room], self.query_prefix_id)
        roles = [QUERY] * len(ids)
        padding = self.padded_query_length - len(ids)
        if padding > 0:
            expansion = QUERY if self.settings.attend_to_expansion_tokens else EXPANSION
            ids += [self.expansion_id] * padding
            roles += [expansion] * padding
        return ids, roles


class LateInteractionFamily(ModelFamily):
    """PyLate ColBERT checkpoints: query and passage encoded apart, scored by MaxSim.

    Runs on torch (CPU, CUDA, MPS; float32, bfloat16, float16). The query's embeddings are
    computed once per batch for each distinct query in it and matched against every passage.
    """

    name = "late-interaction reranker"
    padding_side = "right"

    def __init__(
        self,
        tokenizer,
        config,
        model_name: str,
        checkpoint,
        settings: ColbertSettings,
    ) -> None:
        super().__init__(tokenizer, config, model_name)
        self.checkpoint = checkpoint
        self.settings = settings
        self.prefix_ids = tuple(
            self._prefix_id(prefix) for prefix in (settings.query_prefix, settings.document_prefix)
        )
        self.special_ids = special_tokens_around(tokenizer)
        # PyLate: unknown skiplist words map to the unknown token, which is then skipped too
        ids = tokenizer.convert_tokens_to_ids(list(settings.skiplist_words))
        self.skiplist = frozenset(i for i in ids if i is not None)
        # PyLate pads queries with [MASK] (an encoder), else the end-of-text token, else the pad
        for candidate in (tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
            if candidate is not None:
                self.expansion_id = candidate
                break
        else:
            raise ModelLoadError(
                f"model={model_name!r} has no [MASK], end or pad token to expand queries with"
            )

    def _prefix_id(self, prefix: str) -> Optional[int]:
        if not prefix:
            return None
        token_id = self.tokenizer.get_vocab().get(prefix)
        if token_id is None:
            # PyLate would add it and grow the embeddings with a random row: scores not reproducible
            raise ModelLoadError(
                f"model={self.model_name!r}: its ColBERT prefix {prefix!r} is not a token of its "
                "tokenizer; save the model with PyLate (which adds the prefix tokens) first"
            )
        return token_id

    def auto_class(self):  # the checkpoint's own loader, not a transformers class
        return ColbertModel(self.checkpoint, self.settings)

    def make_encoder(self, max_length: int, query_max_length: Optional[int]):
        return LateInteractionEncoder(self, max_length, query_max_length)

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """MaxSim of each row's query against its passage, as a ``(rows, 1)`` logit column."""
        ids, roles, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
        in_query = mask.bool() & (roles <= EXPANSION)
        query_lengths = in_query.sum(dim=1)
        width = int(query_lengths.max())
        # Each distinct query (tokens and roles) is encoded once; rows point at their query.
        keys = torch.where(in_query[:, :width], ids[:, :width] * 4 + roles[:, :width], -1)
        distinct, owner = torch.unique(keys, dim=0, return_inverse=True)
        query_kept = distinct >= 0
        query_ids = torch.where(query_kept, distinct // 4, self.pad_token_id)
        query_attends = query_kept & (distinct % 4 == QUERY)
        queries = model(input_ids=query_ids, attention_mask=query_attends.long())
        # Passages: each row's tokens after its query, moved to the left.
        lengths = mask.sum(dim=1) - query_lengths
        positions = torch.arange(int(lengths.max()), device=ids.device)
        present = positions < lengths[:, None]
        index = (query_lengths[:, None] + positions).clamp(max=ids.shape[1] - 1)
        passage_ids = torch.where(present, ids.gather(1, index), self.pad_token_id)
        scored = present & (roles.gather(1, index) == DOCUMENT)
        passages = model(input_ids=passage_ids, attention_mask=present.long())
        similarity = torch.einsum("rqd,rtd->rqt", queries[owner], passages)
        similarity = similarity.masked_fill(~scored[:, None, :], float("-inf"))
        best = similarity.max(dim=-1).values
        best = torch.where(query_kept[owner] & torch.isfinite(best), best, 0.0)
        return best.sum(dim=-1, keepdim=True)


def detect_late_interaction(checkpoint) -> Optional[LateInteractionFamily]:
    """The late-interaction family of ``checkpoint`` if it is a PyLate ColBERT one, else None."""
    settings = read_colbert_settings(checkpoint)
    if settings is None:
        return None
    return LateInteractionFamily(
        checkpoint.tokenizer, checkpoint.config, checkpoint.name, checkpoint, settings
    )


__all__ = [
    "LateInteractionEncoder",
    "LateInteractionFamily",
    "detect_late_interaction",
    "special_tokens_around",
]
