"""The decoder LLM rerankers' reference contenders, and crossrank's options for their checkpoints.

- ``mxbai-rerank``: the ``mxbai-rerank`` package's ``MxbaiRerankV2`` (mxbai-rerank-v2; a Qwen2
  decoder); crossrank scores it with ``prompt_format="mxbai"`` (a ``qwen2`` config does not tell
  its prompt, so crossrank asks for it).
- ``flag-layerwise``: FlagEmbedding's ``LayerWiseFlagLLMReranker``
  (bge-reranker-v2-minicpm-layerwise).
- ``flag-lightweight``: FlagEmbedding's ``LightWeightFlagLLMReranker``
  (bge-reranker-v2.5-gemma2-lightweight); its model code runs on transformers <= 4.46 only.

Each is called as its README shows, on CPU in float32, with the benchmark's batch size and
max_length. The layer options (``cutoff_layers``, ``compress_ratio``, ``compress_layers``) go to
FlagEmbedding's ``compute_score`` and to crossrank's drop-in of the same class
(``crossrank.LayerWiseFlagLLMReranker`` / ``LightWeightFlagLLMReranker``), which ``crossrank-torch``
then is; without them both sides take the classes' defaults (the last layer, no compression),
which ``Reranker(model)`` scores too.

    >>> crossrank_options("runs/bench-mxbai")  # doctest: +SKIP
    {'prompt_format': 'mxbai'}
"""

from __future__ import annotations

import itertools
import json
import os
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional

LLM_CONTENDERS = ("mxbai-rerank", "flag-layerwise", "flag-lightweight")
LAYER_OPTIONS = ("cutoff_layers", "compress_ratio", "compress_layers")
Scorer = Callable[[List[List[str]]], List[float]]


def model_config(model_dir: str) -> Dict:
    """The checkpoint's config.json ({} when there is none)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def crossrank_options(model_dir: str) -> Dict:
    """``Reranker`` options a checkpoint needs: ``prompt_format="mxbai"`` for a Qwen2 decoder
    (``Qwen2ForCausalLM``, as mxbai-rerank-base-v2 / -large-v2 are), else none."""
    config = model_config(model_dir)
    causal = any(a.endswith("ForCausalLM") for a in config.get("architectures") or [])
    return {"prompt_format": "mxbai"} if causal and config.get("model_type") == "qwen2" else {}


def load_llm(name: str, model: str, batch_size: int, max_length: int, options: Dict) -> Scorer:
    """Reference contender ``name`` (one of :data:`LLM_CONTENDERS`) with layer ``options``."""
    if name == "mxbai-rerank":
        if options:
            raise SystemExit(f"{', '.join(options)}: for the layer-wise rerankers only")
        return mxbai_rank(model, batch_size, max_length)
    if name == "flag-layerwise":
        from FlagEmbedding import LayerWiseFlagLLMReranker as Flag

        if set(options) - {"cutoff_layers"}:
            raise SystemExit("compress_ratio/compress_layers: LightWeightFlagLLMReranker only")
    elif name == "flag-lightweight":
        from FlagEmbedding import LightWeightFlagLLMReranker as Flag
    else:
        raise SystemExit(f"unknown contender {name!r}; one of {', '.join(LLM_CONTENDERS)}")
    # README: Flag...(model, use_fp16=...); reranker.compute_score(pairs, cutoff_layers=[28], ...)
    flag = Flag(model, use_fp16=False, devices="cpu", batch_size=batch_size, max_length=max_length)
    return lambda pairs: flag.compute_score(
        pairs, batch_size=batch_size, max_length=max_length, **options
    )


def mxbai_rank(model_dir: str, batch_size: int, max_length: int) -> Scorer:
    """MxbaiRerankV2 as its README ranks: ``rank(query, documents, top_k=...)`` per query, its raw
    scores (logit("1") - logit("0"), crossrank's) put back in input order."""
    import torch
    from mxbai_rerank import MxbaiRerankV2

    model = MxbaiRerankV2(model_dir, device="cpu", torch_dtype=torch.float32, max_length=max_length)

    def score(pairs: List[List[str]]) -> List[float]:
        scores: List[float] = []
        for query, group in itertools.groupby(pairs, key=lambda pair: pair[0]):
            documents = [p for _, p in group]
            ranked = model.rank(
                query,
                documents,
                top_k=len(documents),
                batch_size=batch_size,
                return_documents=False,
            )
            by_index = {hit.index: hit.score for hit in ranked}
            scores.extend(by_index[i] for i in range(len(documents)))
        return scores

    return score


def crossrank_flag(model: str, batch_size: int, max_length: int, options: Dict) -> Scorer:
    """crossrank's drop-in of the checkpoint's FlagEmbedding class, called as the reference is
    (for layer options, which ``Reranker`` does not take)."""
    from crossrank import LayerWiseFlagLLMReranker, LightWeightFlagLLMReranker
    from crossrank.families.layerwise_checkpoint import layerwise_kind

    kind = layerwise_kind(SimpleNamespace(**model_config(model)))
    ours = LightWeightFlagLLMReranker if kind == "lightweight" else LayerWiseFlagLLMReranker
    reranker = ours(model, use_fp16=False, devices="cpu", batch_size=batch_size,
                    max_length=max_length)  # fmt: skip
    return lambda pairs: reranker.compute_score(
        pairs, batch_size=batch_size, max_length=max_length, **options
    )


def layer_options(text: Optional[str]) -> Dict:
    """The ``--layer-options`` JSON as keyword arguments (only the options given)."""
    options = json.loads(text) if text else {}
    unknown = set(options) - set(LAYER_OPTIONS)
    if unknown:
        raise SystemExit(f"unknown layer options {sorted(unknown)}; one of {LAYER_OPTIONS}")
    return {k: v for k, v in options.items() if v is not None}
