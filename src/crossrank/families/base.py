"""What every model family provides: encoding pairs into model inputs, a forward, a score head."""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ..windows import split_windows, window_overlap

# One encoded (query, passage) pair: token ids (and token types) as compact int arrays, unpadded.
Feature = Dict[str, Sequence[int]]
# Per passage, the most of its tokens to keep (None: no cap of its own); None for the whole list.
Limits = Optional[Sequence[Optional[int]]]
# A pair's passage for windowing: (its tokens, the room a window has, window tokens -> feature).
WindowParts = Tuple[Any, int, Callable[[Any], Feature]]


class Encoder(ABC):
    """Turns (query, passage) pairs into unpadded features for one max_length/query_max_length.

    A family's encoder implements :meth:`encode` and :meth:`_window_parts`; cutting long passages
    into overlapping windows (:meth:`encode_windows`) is the same for every family.
    """

    max_length: int
    query_max_length: int

    @abstractmethod
    def encode(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits = None
    ) -> List[Feature]:
        """One feature per pair, the passage cut to what fits (and to its limit, if any).

        ``passage_limits[i]`` (None: no cap) keeps at most that many of passage ``i``'s tokens,
        as if the passage had been cut after them (Cohere's ``max_tokens_per_doc``).
        """

    @abstractmethod
    def _window_parts(
        self, queries: Sequence[str], passages: Sequence[str], passage_limits: Limits
    ) -> Iterable[WindowParts]:
        """Per pair, in order: its whole passage's tokens (cut to its limit), the room a window
        has beside the query and the prompt, and how one window becomes a feature."""

    def _split(self, tokens, room: int, overlap: int) -> list:
        """``tokens`` as windows of ``room`` sharing ``overlap`` (see :mod:`crossrank.windows`)."""
        return split_windows(tokens, room, overlap)

    def encode_windows(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        stride: int,
        passage_limits: Limits = None,
    ) -> Tuple[List[Feature], List[int]]:
        """Like :meth:`encode`, but a passage that does not fit is split into overlapping windows.

        Returns the features and, for each, the index of its pair. A passage that fits gives the
        same single feature as :meth:`encode`; a longer one gives windows sharing
        ``min(stride, room // 2)`` tokens (see :mod:`crossrank.windows`).
        """
        features: List[Feature] = []
        owners: List[int] = []
        parts = self._window_parts(queries, passages, passage_limits)
        for index, (tokens, room, feature_of) in enumerate(parts):
            for window in self._split(tokens, room, window_overlap(stride, room)):
                features.append(feature_of(window))
                owners.append(index)
        return features, owners


class ModelFamily(ABC):
    """A kind of reranking checkpoint: how its inputs are built and how a score is read off it.

    A family is chosen from the checkpoint's config and tokenizer alone (see
    :func:`crossrank.families.detect_family`), so a backend can refuse it before any weights load
    (each backend declares the families it runs, see :mod:`crossrank.backends.registry`).
    Subclasses set ``name``, ``padding_side`` and ``auto_class_name`` (or override
    :meth:`auto_class`) and implement :meth:`make_encoder` and :meth:`forward`.
    """

    name: str = ""
    padding_side: str = "right"
    auto_class_name: str = ""  # e.g. "AutoModelForSequenceClassification"

    def __init__(self, tokenizer, config, model_name: str) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.model_name = model_name
        pad = tokenizer.pad_token_id
        self.pad_token_id = 0 if pad is None else pad
        self._encoders: Dict[Tuple[int, Optional[int]], Encoder] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ to implement

    def auto_class(self):
        """The class that loads this family's weights: by default the transformers class named
        ``auto_class_name`` (a family with its own network overrides this)."""
        import transformers

        return getattr(transformers, self.auto_class_name)

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


def refuse_prompt_options(model_name: str, kind: str, **options: Optional[str]) -> None:
    """A ``ValueError`` naming the first of ``prompt_format=`` / ``instruction=`` given for a
    checkpoint (a ``kind``) whose family has no prompt to set: they are decoder LLM rerankers'.

    >>> refuse_prompt_options("m", "cross-encoder", instruction=None, prompt_format="qwen3")
    Traceback (most recent call last):
    ValueError: prompt_format= applies to decoder LLM rerankers (Qwen3-Reranker, bge-reranker-v2-gemma); model='m' is a cross-encoder, leave it out
    """
    for argument, value in options.items():
        if value is not None:
            raise ValueError(
                f"{argument}= applies to decoder LLM rerankers (Qwen3-Reranker, "
                f"bge-reranker-v2-gemma); model={model_name!r} is a {kind}, leave it out"
            )
