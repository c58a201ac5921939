"""Reading a layer-wise LLM reranker's checkpoint without its custom code: which kind it is, its
config as written, its weights.

Without torch at import (``crossrank.loading`` asks :func:`layerwise_kind` about a config that
transformers does not know).

>>> from types import SimpleNamespace
>>> layerwise_kind(SimpleNamespace(architectures=["CostWiseGemmaForCausalLM"]))
'lightweight'
>>> layerwise_kind(SimpleNamespace(model_type="llama")) is None
True
"""

from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Dict, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    import torch

LAYERWISE_ARCHITECTURE = "LayerWiseMiniCPMForCausalLM"
LIGHTWEIGHT_ARCHITECTURE = "CostWiseGemmaForCausalLM"


def layerwise_kind(config) -> Optional[str]:
    """``"layerwise"``, ``"lightweight"`` or None, from the config's declared architecture."""
    declared = list(getattr(config, "architectures", None) or [])
    auto_map = getattr(config, "auto_map", None) or {}
    declared += [str(v).rsplit(".", 1)[-1] for v in auto_map.values() if isinstance(v, str)]
    model_type = getattr(config, "model_type", None)
    if LIGHTWEIGHT_ARCHITECTURE in declared or model_type == "cost_wise_gemma":
        return "lightweight"
    if LAYERWISE_ARCHITECTURE in declared or (
        model_type == "minicpm" and hasattr(config, "start_layer") and hasattr(config, "head_type")
    ):
        return "layerwise"
    return None


# The defaults of FlagEmbedding's config classes (LayerWiseMiniCPMConfig; CostWiseGemmaConfig on
# Gemma2Config, transformers 4.46), for fields a config.json leaves out.
DEFAULTS = {
    "layerwise": dict(
        hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
        attention_bias=False, max_position_embeddings=2048, scale_emb=1, dim_model_base=1,
        scale_depth=1, start_layer=8, head_multi=True, head_type="simple",
    ),
    "lightweight": dict(
        head_dim=256, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=False, max_position_embeddings=8192,
        query_pre_attn_scalar=256, sliding_window=4096, final_logit_softcapping=30.0,
        start_layer=28, layer_sep=28, layer_wise=False,
    ),
}  # fmt: skip


def complete_config(config, kind: str):
    """``config`` with the fields its ``kind``'s config class defaults filled in where missing."""
    # transformers 5 moves rope_theta into rope_parameters when a config has rope_scaling
    rope = getattr(config, "rope_parameters", None) or {}
    if not hasattr(config, "rope_theta") and "rope_theta" in rope:
        config.rope_theta = rope["rope_theta"]
    for name, value in DEFAULTS[kind].items():
        if not hasattr(config, name):
            setattr(config, name, value)
    if getattr(config, "num_key_value_heads", None) is None:
        config.num_key_value_heads = config.num_attention_heads
    return config


def plain_config(location: str, **options):
    """The config.json at ``location`` as a plain ``PretrainedConfig`` (no model class, no code)."""
    from transformers import PretrainedConfig

    config_dict, _ = PretrainedConfig.get_config_dict(location, **options)
    # set after the rest: transformers 5 standardizes rope_scaling from the other fields
    scaling = config_dict.pop("rope_scaling", None)
    config = PretrainedConfig.from_dict(config_dict)
    if scaling is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers 5: "use rope_parameters"
            config.rope_scaling = scaling
    return config


def checkpoint_directory(location: str, options: Dict) -> str:
    """A local directory with ``location``'s config and weights (a hub id is fetched, or read from
    the cache with ``local_files_only``)."""
    if os.path.isdir(location):
        return location
    from huggingface_hub import snapshot_download

    return snapshot_download(
        location,
        allow_patterns=["*.json", "*.safetensors", "*.bin"],
        cache_dir=options.get("cache_dir"),
        revision=options.get("revision"),
        local_files_only=bool(options.get("local_files_only", False)),
    )


def read_state_dict(directory: str) -> Dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in ``directory`` (safetensors or torch, sharded or not)."""
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        files: List[str] = []
        if os.path.isfile(os.path.join(directory, single)):
            files = [single]
        elif os.path.isfile(os.path.join(directory, index)):
            with open(os.path.join(directory, index), encoding="utf-8") as stream:
                files = sorted(set(json.load(stream)["weight_map"].values()))
        if files:
            state: Dict[str, torch.Tensor] = {}
            for name in files:
                path = os.path.join(directory, name)
                if name.endswith(".safetensors"):
                    from safetensors.torch import load_file

                    state.update(load_file(path))
                else:
                    import torch

                    state.update(torch.load(path, map_location="cpu", weights_only=True))
            return state
    raise OSError(f"no model.safetensors or pytorch_model.bin (or sharded index) in {directory}")
