"""What every model family provides: encoding pairs into model inputs, a forward, a score head."""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import torch

# One encoded (query, passage) pair: token ids (and token types) as compact int arrays, unpadded.
Feature = Dict[str, Sequence[int]]
# Per passage, the most of its tokens to keep (None: no cap of its own); None for the whole list.
Limits = Optional[Sequence[Optional[int]]]


class Encoder(Protocol):
    """Turns (query, passage) pairs into unpadded features for one max_length/query_max_length."""

    max_length: int
    query_max_length: int

    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]: ...

    def encode_windows(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        stride: int,
        passage_limits: Limits = None,
    ) -> Tuple[List[Feature], List[int]]: ...


class ModelFamily(ABC):
    """A kind of reranking checkpoint: how its inputs are built and how a score is read off it.

    A family is chosen from the checkpoint's config and tokenizer alone (see
    :func:`crossrank.families.detect_family`), so a backend can refuse it before any weights load
    (each backend declares the families it runs, see :mod:`crossrank.backends.registry`).
    Subclasses set ``name`` and ``padding_side`` and implement :meth:`auto_class`,
    :meth:`make_encoder` and :meth:`forward`.
    """

    name: str = ""
    padding_side: str = "right"

    def __init__(self, tokenizer, config, model_name: str) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.model_name = model_name
        pad = tokenizer.pad_token_id
        self.pad_token_id = 0 if pad is None else pad
        self._encoders: Dict[Tuple[int, Optional[int]], Encoder] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ to implement

    @staticmethod
    @abstractmethod
    def auto_class():
        """The transformers ``AutoModelFor...`` class that loads this family's weights."""

    @abstractmethod
    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> Encoder:
        """A new encoder for these lengths (``query_max_length=None``: the family's default)."""

    @abstractmethod
    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(rows, 1 or 2)`` of a padded batch on a torch model."""

    # ------------------------------------------------------------------ shared

    def with_tokenizer(self, tokenizer) -> ModelFamily:
        """This family over another tokenizer, e.g. a copy for a second thread (a fast
        tokenizer's truncation state is shared, so two threads must not use one at once)."""
        twin = copy.copy(self)
        twin.tokenizer = tokenizer
        twin._encoders = {}
        twin._lock = threading.Lock()
        return twin

    def encoder(self, max_length: int, query_max_length: Optional[int] = None) -> Encoder:
        """The (cached) encoder for these lengths; encoders are thread-safe."""
        key = (max_length, query_max_length)
        with self._lock:
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = self._encoders[key] = self.make_encoder(max_length, query_max_length)
            return encoder

    @staticmethod
    def head(logits: torch.Tensor) -> torch.Tensor:
        """Scores in float64: a 1-column head's logit, a 2-column head's ``logit[1] - logit[0]``.

        Computed in float64 whatever dtype the model ran in, so the difference of two half-precision
        logits and any sigmoid taken later do not round or saturate.
        """
        logits = logits.double()
        if logits.shape[-1] == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]
