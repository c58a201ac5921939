"""FlagEmbedding's layer-wise LLM rerankers: a score from an intermediate layer's own head.

- ``"layer-wise LLM reranker"`` (bge-reranker-v2-minicpm-layerwise, a
  ``LayerWiseMiniCPMForCausalLM``): every layer from ``start_layer`` on has a ``hidden -> 1``
  head; ``cutoff_layers`` picks the layer(s) to read (default: the last), so the layers above
  are never run.
- ``"lightweight LLM reranker"`` (bge-reranker-v2.5-gemma2-lightweight, a
  ``CostWiseGemmaForCausalLM``): the same with Gemma 2, plus **token compression**:
  ``compress_ratio`` passage tokens merged into one before each layer in ``compress_layers``.

Both read FlagEmbedding's prompt (``<bos>A: {query}\\n B: {passage}\\n{prompt}``, the passage cut
as ``FlagLLMReranker`` cuts it) and score with the head's logit at the last token. Detection is by
the config's declared architecture (``architectures`` or ``auto_map``, e.g. a checkpoint saved with
its custom code), or the model type FlagEmbedding's config classes write (``cost_wise_gemma``;
``minicpm`` with per-layer heads). The networks are computed by crossrank itself
(:mod:`~crossrank.families.layerwise_models`): no ``trust_remote_code``, any transformers version.

>>> family = detect_family(checkpoint)                          # doctest: +SKIP
>>> family.with_options(cutoff_layers=[28]).outputs             # doctest: +SKIP
[(28, 20)]
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Dict, List, Optional, Sequence, Union

import torch

from ..errors import warn_once
from .base import Feature, ModelFamily
from .decoder import PromptEncoder
from .layerwise_checkpoint import complete_config, layerwise_kind

# FlagEmbedding's LightweightLLMReranker default prompt (the layer-wise one uses bge's).
LIGHTWEIGHT_PROMPT = "Predict whether passage B contains an answer to query A."

Layers = Union[int, Sequence[int], None]


def layerwise_family(checkpoint, prompt_format=None, instruction=None) -> Optional[ModelFamily]:
    """The layer-wise family of an opened checkpoint, or None when it is not one.

    ``instruction`` is the prompt after the passage (FlagEmbedding's ``prompt``).
    """
    kind = layerwise_kind(checkpoint.config)
    if kind is None:
        return None
    if prompt_format is not None:
        raise ValueError(
            f"prompt_format= applies to decoder LLM rerankers; model={checkpoint.name!r} is a "
            f"{kind} reranker with FlagEmbedding's own prompt: leave it out (instruction= sets the "
            "prompt after the passage)"
        )
    family = LightWeightFamily if kind == "lightweight" else LayerWiseFamily
    config = complete_config(checkpoint.config, kind)
    return family(checkpoint.tokenizer, config, checkpoint.name, prompt=instruction)


class LayeredPromptEncoder(PromptEncoder):
    """FlagEmbedding's bge prompt with ``<bos>`` always first (its layer-wise classes put it
    there even where the tokenizer pads with it); with ``segments``, each feature's
    ``token_type_ids`` mark query (0), passage (1) and prompt (2) for token compression."""

    def __init__(self, tokenizer, max_length, query_max_length, prompt, segments: bool) -> None:
        super().__init__(tokenizer, "bge", max_length, query_max_length, prompt)
        if tokenizer.bos_token_id is None:
            raise ValueError(
                "the tokenizer has no bos token, which FlagEmbedding's prompt starts with"
            )
        self._bos = [tokenizer.bos_token_id]
        self.segments = segments

    def encode(self, queries, passages, passage_limits=None) -> List[Feature]:
        features = super().encode(queries, passages, passage_limits)
        if not self.segments:
            return features
        lengths = self._query_lengths(queries)
        return [self._segment(lengths[q], f) for q, f in zip(queries, features)]

    def _window_parts(self, queries, passages, passage_limits):
        parts = super()._window_parts(queries, passages, passage_limits)
        if not self.segments:
            yield from parts
            return
        lengths = self._query_lengths(queries)
        for query, (tokens, room, feature_of) in zip(queries, parts):
            yield tokens, room, functools.partial(self._segmented, lengths[query], feature_of)

    def _segmented(self, query_length: int, feature_of, window) -> Feature:
        return self._segment(query_length, feature_of(window))

    def _segment(self, query_length: int, feature: Feature) -> Feature:
        ids = feature["input_ids"]
        prompt = len(self._sep) + len(self._prompt)
        passage = len(ids) - query_length - prompt
        return {
            "input_ids": ids,
            "token_type_ids": [0] * query_length + [1] * passage + [2] * prompt,
        }

    def _query_lengths(self, queries) -> Dict[str, int]:
        """FlagEmbedding's ``query_lengths``: ``<bos>``, the capped ``A: {query}``, the newline."""
        unique = list(dict.fromkeys(queries))
        with self._lock:
            ids = self.tokenizer(
                ["A: " + q for q in unique],
                add_special_tokens=False,
                truncation=True,
                max_length=self.query_max_length,
            )["input_ids"]
        return {q: len(self._bos) + len(i) + len(self._sep) for q, i in zip(unique, ids)}


class LayerWiseFamily(ModelFamily):
    """bge-reranker-v2-minicpm-layerwise: the head of ``cutoff_layers``' layer; torch only.

    ``outputs`` lists, per score list, ``(layer, head)``: the hidden state after ``layer`` layers
    read by head ``head``. A family scores one list; :meth:`all_outputs` resolves several
    ``cutoff_layers`` as FlagEmbedding does and :meth:`with_options` makes a family per list.
    """

    name = "layer-wise LLM reranker"
    padding_side = "right"  # the score is read at each row's last real token
    default_prompt = None  # bge's

    def __init__(
        self, tokenizer, config, model_name, prompt=None, cutoff_layers: Layers = None, **options
    ) -> None:
        super().__init__(tokenizer, config, model_name)
        self._check_config()
        self.prompt = prompt
        self.outputs = self.all_outputs(cutoff_layers)[:1]
        self._set_options(**options)

    def _check_config(self) -> None:
        scaling = self.config.rope_scaling
        if scaling is not None and (scaling or {}).get("type") not in ("linear", "dynamic"):
            raise ValueError(
                f"model={self.model_name!r} has rope_scaling={scaling!r}; MiniCPM's code knows "
                "'linear' and 'dynamic'"
            )
        head_type = self.config.head_type
        if head_type != "simple":
            raise ValueError(
                f"model={self.model_name!r} has head_type={head_type!r}; crossrank scores "
                "layer-wise MiniCPM rerankers with one-logit heads (head_type='simple', as "
                "bge-reranker-v2-minicpm-layerwise)"
            )

    def _set_options(self) -> None:
        pass

    def _layers(self) -> List[int]:
        return list(range(self.config.start_layer, self.config.num_hidden_layers + 1))

    def _head_of(self, position: int, layer: int) -> int:
        return layer - self.config.start_layer if getattr(self.config, "head_multi", True) else 0

    def all_outputs(self, cutoff_layers: Layers = None) -> List[tuple]:
        """``(layer, head)`` per score list for ``cutoff_layers``, exactly as FlagEmbedding pairs
        them: the distinct usable layers in ascending order, each read by the head of the layer
        given at the same position (layers outside the usable range dropped with a warning)."""
        if cutoff_layers is None:
            layers = [self.config.num_hidden_layers]
        elif isinstance(cutoff_layers, int) and not isinstance(cutoff_layers, bool):
            layers = [cutoff_layers]
        elif isinstance(cutoff_layers, (list, tuple)) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in cutoff_layers
        ):
            layers = list(cutoff_layers)
        else:
            raise TypeError(
                f"cutoff_layers must be an int, a list of ints or None, got {cutoff_layers!r}"
            )
        usable = self._layers()
        kept = [layer for layer in layers if layer in usable]
        if not kept:
            raise ValueError(
                f"cutoff_layers={cutoff_layers!r}: model={self.model_name!r} scores after layers "
                f"{usable[0]}..{usable[-1]}"
                + (
                    f" in steps of {usable[1] - usable[0]}"
                    if len(usable) > 1 and usable[1] - usable[0] > 1
                    else ""
                )
            )
        if len(kept) < len(layers):
            warn_once(
                f"cutoff-{self.model_name}-{layers}",
                f"cutoff_layers {[x for x in layers if x not in usable]} have no head in "
                f"model={self.model_name!r} and are left out (as FlagEmbedding does)",
            )
        distinct = sorted(set(kept))
        return [(layer, self._head_of(i, kept[i])) for i, layer in enumerate(distinct)]

    def with_options(
        self, cutoff_layers: Layers = None, output: int = 0, prompt: Optional[str] = None, **options
    ) -> LayerWiseFamily:
        """This family reading score list ``output`` of ``cutoff_layers``, with another
        ``prompt`` after the passage (None: this family's) and other options (compression)."""
        twin = copy.copy(self)
        twin.outputs = [self.all_outputs(cutoff_layers)[output]]
        if options:
            twin._set_options(**options)
        if prompt is not None and prompt != self.prompt:
            twin.prompt, twin._encoders, twin._lock = prompt, {}, threading.Lock()
        return twin

    @staticmethod
    def auto_class():
        from .layerwise_models import LayerWiseMiniCPM

        return LayerWiseMiniCPM

    def make_encoder(self, max_length: int, query_max_length: Optional[int]) -> PromptEncoder:
        prompt = self.default_prompt if self.prompt is None else self.prompt
        return LayeredPromptEncoder(
            self.tokenizer,
            max_length,
            query_max_length,
            prompt,
            segments=self.default_prompt is not None,
        )

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return model.scores(batch["input_ids"], batch["attention_mask"], self.outputs)


class LightWeightFamily(LayerWiseFamily):
    """bge-reranker-v2.5-gemma2-lightweight: layer-wise heads plus token compression."""

    name = "lightweight LLM reranker"
    default_prompt = LIGHTWEIGHT_PROMPT

    def _check_config(self) -> None:
        if not getattr(self.config, "layer_wise", False):
            raise ValueError(
                f"model={self.model_name!r} is a CostWiseGemma without per-layer heads "
                "(layer_wise=false); crossrank scores the layer-wise checkpoints "
                "(bge-reranker-v2.5-gemma2-lightweight)"
            )

    def _set_options(
        self, compress_ratio: int = 1, compress_layers: Optional[Sequence[int]] = (8,)
    ) -> None:
        if (
            isinstance(compress_ratio, bool)
            or not isinstance(compress_ratio, int)
            or compress_ratio < 1
        ):
            raise ValueError(
                f"compress_ratio must be a positive int (1, 2, 4 or 8), got {compress_ratio!r}"
            )
        if compress_layers is not None and (
            isinstance(compress_layers, (str, bytes))
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in compress_layers)
        ):
            raise TypeError(f"compress_layers must be a list of ints, got {compress_layers!r}")
        self.compress_ratio = compress_ratio
        self.compress_layers = tuple(compress_layers or ())

    def _layers(self) -> List[int]:
        config = self.config
        return list(range(config.start_layer, config.num_hidden_layers + 1, config.layer_sep))

    def _head_of(self, position: int, layer: int) -> int:
        return position  # FlagEmbedding's CostWiseGemma reads output i with lm_head[i]

    @staticmethod
    def auto_class():
        from .layerwise_models import LightWeightGemma2

        return LightWeightGemma2

    def forward(self, model, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        types, real = batch["token_type_ids"], batch["attention_mask"].bool()
        return model.scores(
            batch["input_ids"],
            batch["attention_mask"],
            self.outputs,
            compress_layers=self.compress_layers,
            compress_ratio=self.compress_ratio,
            query_lengths=((types == 0) & real).sum(1).tolist(),
            prompt_lengths=(types == 2).sum(1).tolist(),
        )


__all__ = ["LayerWiseFamily", "LightWeightFamily", "layerwise_family", "layerwise_kind"]
