"""Tiny random layer-wise LLM rerankers (FlagEmbedding's MiniCPM layer-wise, Gemma 2 lightweight).

The config is written as FlagEmbedding's config classes write it (``architectures``,
``model_type`` and their fields), so FlagEmbedding's own model classes load the same checkpoint;
the weights are random, made with crossrank's networks (which carry the same parameter names),
so the builder needs neither FlagEmbedding nor a particular transformers version.

>>> from crossrank.testing import save_layerwise
>>> path = save_layerwise(tmp_path / "lw", "layerwise")             # doctest: +SKIP
>>> Reranker(path).family                                           # doctest: +SKIP
'layer-wise LLM reranker'
"""

from __future__ import annotations

import json
import os

import torch

from .decoders import gemma_tokenizer
from .models import TINY_SIZES

LAYERWISE_KINDS = ("layerwise", "lightweight")
LAYERS = 4  # heads on layers 2, 3 and 4


def layerwise_config(kind: str, tokenizer) -> dict:
    """The config.json of a tiny ``kind`` checkpoint (one of :data:`LAYERWISE_KINDS`)."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=TINY_SIZES["hidden_size"],
        intermediate_size=TINY_SIZES["intermediate_size"],
        num_hidden_layers=LAYERS,
        num_attention_heads=TINY_SIZES["num_attention_heads"],
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.2,
        rope_theta=10000.0,
        attention_bias=False,
        attention_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        start_layer=2,
        torch_dtype="float32",
    )
    if kind == "layerwise":
        return dict(
            common,
            architectures=["LayerWiseMiniCPMForCausalLM"],
            model_type="minicpm",
            hidden_act="silu",
            rms_norm_eps=1e-5,
            scale_emb=12,
            dim_model_base=256,
            scale_depth=1.4,
            head_multi=True,
            head_type="simple",
            # FlagEmbedding 1.4.2's copy of the MiniCPM code fails with the cache on transformers
            # >= 4.50 (DynamicCache.get_usable_length is gone); crossrank never uses a cache.
            use_cache=False,
        )
    if kind == "lightweight":
        return dict(
            common,
            architectures=["CostWiseGemmaForCausalLM"],
            model_type="cost_wise_gemma",
            head_dim=8,
            hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6,
            query_pre_attn_scalar=16,
            sliding_window=24,  # shorter than the test prompts, so the window matters
            attn_logit_softcapping=5.0,
            final_logit_softcapping=10.0,
            layer_sep=1,
            layer_wise=True,
        )
    raise ValueError(f"kind must be one of {LAYERWISE_KINDS}, got {kind!r}")


def save_layerwise(path, kind: str, seed: int = 0) -> str:
    """A tiny random ``kind`` checkpoint (config, safetensors weights, tokenizer) at ``path``."""
    from safetensors.torch import save_file

    from ..families.layerwise_checkpoint import plain_config
    from ..families.layerwise_models import LayerWiseMiniCPM, LightWeightGemma2

    os.makedirs(path, exist_ok=True)
    tokenizer = gemma_tokenizer()
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as stream:
        json.dump(layerwise_config(kind, tokenizer), stream, indent=2)
    config = plain_config(path)
    torch.manual_seed(seed)
    model = (LayerWiseMiniCPM if kind == "layerwise" else LightWeightGemma2)(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            base = 1.0 if name.endswith("norm.weight") and kind == "layerwise" else 0.0
            # wide heads: scores spread over a few units, so equality checks say something
            parameter.normal_(base, 1.0 if name.startswith("lm_head") else 0.2)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(path)
    return os.fspath(path)


__all__ = ["LAYERWISE_KINDS", "layerwise_config", "save_layerwise"]
