"""``LayerWiseFlagLLMReranker`` and ``LightWeightFlagLLMReranker``: FlagEmbedding 1.4's layer-wise
LLM rerankers on crossrank's core.

Same constructors and ``compute_score`` signatures as FlagEmbedding's, the same scores (within
float rounding) on transformers 4 and 5, without ``trust_remote_code`` (crossrank computes the
networks itself, see :mod:`crossrank.families.layerwise_models`), and on CPU in float32 (as
FlagEmbedding does on CPU; on CUDA both run float16 unless ``use_bf16``). As in FlagEmbedding:

- ``cutoff_layers`` (constructor default, or per call) picks the layers whose heads score; one
  layer gives a ``list`` of floats, several give one list per layer (FlagEmbedding's pairing of
  layers and heads kept, layers without a head dropped with a warning);
- ``compress_ratio`` / ``compress_layers`` (lightweight only; ``compress_layer`` is the deprecated
  spelling) merge passage tokens before those layers;
- ``prompt`` may change per call; ``normalize`` applies a sigmoid.

See :mod:`crossrank.compat.flag` for what the drop-ins keep and where they differ (a ``peft_path``
is refused: merge the adapter first).

>>> from crossrank import LightWeightFlagLLMReranker
>>> name = "BAAI/bge-reranker-v2.5-gemma2-lightweight"
>>> reranker = LightWeightFlagLLMReranker(name)  # doctest: +SKIP
>>> reranker.compute_score(
...     [["what is panda?", "hi"]], cutoff_layers=[28], compress_ratio=2, compress_layers=[24, 40]
... )  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..devices import resolve_device
from ..errors import warn_once
from ..inputs import as_pairs
from ..pipeline import Pipeline, Request
from ..results import activate
from .flag import FlagReranker, Scores, target_devices
from .flag_llm import FlagLLMReranker
from .signatures import extends, option

Layers = Union[int, Sequence[int], None]
LayeredScores = Union[Scores, List[List[float]]]


class LayerWiseFlagLLMReranker(FlagLLMReranker):
    """FlagEmbedding 1.4's ``LayerWiseFlagLLMReranker`` (bge-reranker-v2-minicpm-layerwise).

    Args:
        cutoff_layers: the layer(s) whose heads score (default: the last layer).
        model_name_or_path, peft_path, use_fp16, use_bf16, instructions, cache_dir,
            trust_remote_code, devices, prompt, batch_size, query_max_length, max_length,
            normalize: as :class:`~crossrank.FlagLLMReranker` (the prompt after the passage
            defaults to bge's).

    >>> name = "BAAI/bge-reranker-v2-minicpm-layerwise"
    >>> reranker = LayerWiseFlagLLMReranker(name)  # doctest: +SKIP
    >>> reranker.compute_score([["what is panda?", "hi"]], cutoff_layers=[28])  # doctest: +SKIP
    """

    _cls_name = "LayerWiseFlagLLMReranker"
    _family = "layer-wise LLM reranker"

    @extends(FlagLLMReranker.__init__, devices=[option("cutoff_layers", Layers)])
    def __init__(self, call: Dict[str, Any]) -> None:
        self._start(call, cutoff_layers=call.pop("cutoff_layers"))

    def _start(self, arguments: Dict[str, Any], **options) -> None:
        """Set this class's ``options``, then start as a FlagLLMReranker with ``arguments``."""
        for name, value in options.items():
            setattr(self, name, value)
        kwargs = arguments.pop("kwargs")
        # FlagEmbedding: "use_bf16 and use_fp16 cannot both be False": float16 where it applies
        # (not on CPU, where both run float32)
        devices = [resolve_device(d) for d in target_devices(arguments["devices"])]
        half = not arguments["use_bf16"] and any(d.type != "cpu" for d in devices)
        arguments["use_fp16"] = arguments["use_fp16"] or half
        super().__init__(**arguments, **kwargs)
        if self.reranker.family != self._family:
            raise ValueError(
                f"model_name_or_path={self.model_name_or_path!r} is a {self.reranker.family}, not "
                f"a {self._family}; use {_class_for(self.reranker.family)}"
            )
        self._pipelines: Dict[tuple, Pipeline] = {}
        self._options(**options)  # checked now, as the first call would

    def _setup(self, *args, prompt_format=None, **core) -> None:
        super()._setup(*args, **core)  # the family sets its own prompt

    @extends(FlagLLMReranker.compute_score, max_length=[option("cutoff_layers", Layers)])
    def compute_score(self, call: Dict[str, Any]) -> LayeredScores:
        """Scores of ``[query, passage]`` pairs in input order: a list for one cutoff layer, a
        list per layer for several. ``use_dataloader``/``num_workers`` are accepted and unused.

        >>> pairs = [["q", "p1"], ["q", "p2"]]
        >>> reranker.compute_score(pairs, cutoff_layers=[28, 40])  # doctest: +SKIP
        [[-1.2, 3.4], [-0.8, 2.9]]
        """
        use_dataloader, num_workers = call.pop("use_dataloader"), call.pop("num_workers")
        if use_dataloader or num_workers is not None:
            warn_once(
                "flag-dataloader-layerwise",
                f"{self._cls_name}.compute_score: use_dataloader/num_workers are not used; "
                "crossrank tokenizes in-process (scores are unchanged).",
            )
        return self._layered(call, self._options(cutoff_layers=call.pop("cutoff_layers")))

    def _options(self, cutoff_layers: Layers = None) -> Dict[str, Any]:
        options = {"cutoff_layers": self.cutoff_layers if cutoff_layers is None else cutoff_layers}
        self.reranker.model_family.with_options(**options)  # checks them
        return options

    # ------------------------------------------------------------------ scoring

    def _layered(self, call: Dict[str, Any], options: Dict[str, Any]) -> LayeredScores:
        """Scores of ``call``'s pairs (compute_score's arguments) per cutoff layer in ``options``."""
        sentence_pairs, batch_size, normalize = (
            call[name] for name in ("sentence_pairs", "batch_size", "normalize")
        )
        max_length, query_max_length, prompt = (
            call["max_length"],
            call["query_max_length"],
            call["prompt"],
        )
        if call["kwargs"]:
            raise TypeError(
                f"compute_score() got {', '.join(sorted(call['kwargs']))}: FlagEmbedding passes "
                "such options to the tokenizer, which would change scores; crossrank does not take "
                "them"
            )
        if normalize is not None and not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True, False or None, got {normalize!r}")
        normalize = self.normalize if normalize is None else normalize
        family = self.reranker.model_family
        prompt = self.prompt if prompt is None else prompt
        count = len(family.all_outputs(options["cutoff_layers"]))
        pairs = self._pairs(sentence_pairs)
        if not pairs:
            return []
        _, pairs = as_pairs(pairs)
        reranker = self.reranker
        request = Request.for_call(
            reranker.settings,
            batch_size,
            **self._lengths(max_length, query_max_length),
            tokenizer=reranker.tokenizer,
            model=reranker.model,
        )
        lists = []
        for output in range(count):
            variant = family.with_options(output=output, prompt=prompt, **options)
            raw = self._pipeline(variant).score(pairs, request)
            lists.append(activate(raw) if normalize else raw)
        several = len(self.target_devices) > 1
        scores = lists[0] if count == 1 else lists
        return np.asarray(scores, dtype=np.float64) if several else scores

    def _pipeline(self, family) -> Pipeline:
        """A pipeline scoring with ``family`` on the reranker's backends (built once per set of
        options; the backends share the loaded weights)."""
        key = (
            tuple(family.outputs),
            family.prompt,
            getattr(family, "compress_ratio", None),
            getattr(family, "compress_layers", None),
        )
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            backends = []
            for backend in self.reranker._backends:
                twin = copy.copy(backend)
                twin.forward = family.forward
                backends.append(twin)
            pipeline = self._pipelines.setdefault(key, Pipeline(family, backends))
        return pipeline


class LightWeightFlagLLMReranker(LayerWiseFlagLLMReranker):
    """FlagEmbedding 1.4's ``LightWeightFlagLLMReranker`` (bge-reranker-v2.5-gemma2-lightweight).

    Args:
        cutoff_layers: the layer(s) whose heads score (default: the last layer).
        compress_layers: layers before which the passage is compressed (default ``[8]``).
        compress_ratio: passage tokens merged into one (1: no compression; FlagEmbedding
            documents 1, 2, 4 and 8).
        other arguments: as :class:`LayerWiseFlagLLMReranker` (the prompt defaults to
            ``"Predict whether passage B contains an answer to query A."``).

    >>> name = "BAAI/bge-reranker-v2.5-gemma2-lightweight"
    >>> reranker = LightWeightFlagLLMReranker(name)  # doctest: +SKIP
    >>> reranker.compute_score([["q", "p"]], cutoff_layers=[28], compress_ratio=2)  # doctest: +SKIP
    """

    _cls_name = "LightWeightFlagLLMReranker"
    _family = "lightweight LLM reranker"

    @extends(
        LayerWiseFlagLLMReranker.__init__,
        cutoff_layers=[
            # FlagEmbedding's default, never mutated
            option("compress_layers", Sequence[int], [8]),
            option("compress_ratio", int, 1),
        ],
    )
    def __init__(self, call: Dict[str, Any]) -> None:
        options = ("cutoff_layers", "compress_layers", "compress_ratio")
        self._start(call, **{name: call.pop(name) for name in options})

    @extends(
        FlagReranker.compute_score,
        max_length=[
            option("cutoff_layers", Layers),
            option("compress_layer", Optional[Sequence[int]]),
            option("compress_layers", Optional[Sequence[int]]),
            option("compress_ratio", Optional[int]),
            option("prompt", Optional[str]),
        ],
    )
    def compute_score(self, call: Dict[str, Any]) -> LayeredScores:
        """Scores of ``[query, passage]`` pairs in input order: a list for one cutoff layer, a
        list per layer for several; ``compress_*`` override the constructor's for this call.

        >>> pairs = [["q", "p1"], ["q", "p2"]]
        >>> reranker.compute_score(pairs, compress_ratio=2, compress_layers=[24])  # doctest: +SKIP
        """
        compress_layer, compress_layers = call.pop("compress_layer"), call.pop("compress_layers")
        if compress_layer is not None:
            warn_once(
                "flag-compress-layer",
                "Try not to use the parameter `compress_layer`; use `compress_layers` instead.",
            )
            compress_layers = compress_layer
        options = self._options(
            call.pop("cutoff_layers"), compress_layers, call.pop("compress_ratio")
        )
        return self._layered(call, options)

    def _options(self, cutoff_layers: Layers = None, compress_layers=None, compress_ratio=None):
        options = {
            "cutoff_layers": self.cutoff_layers if cutoff_layers is None else cutoff_layers,
            "compress_layers": self.compress_layers if compress_layers is None else compress_layers,
            "compress_ratio": self.compress_ratio if compress_ratio is None else compress_ratio,
        }
        self.reranker.model_family.with_options(**options)  # checks them
        return options


def _class_for(family: str) -> str:
    return {
        "cross-encoder": "FlagReranker",
        "layer-wise LLM reranker": "LayerWiseFlagLLMReranker",
        "lightweight LLM reranker": "LightWeightFlagLLMReranker",
    }.get(family, "FlagLLMReranker")
