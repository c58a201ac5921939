"""Which parts of a model train: freezing the lowest blocks, setting dropout.

>>> frozen = freeze(model, layers=2)        # doctest: +SKIP
>>> changed = set_dropout(model, 0.0)       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import ArgumentError

_LAYER_PATHS = ("encoder.layer", "encoder.layers", "transformer.layer", "layers", "layer", "h")
_EMBEDDING_PATHS = ("embeddings", "embed_tokens", "wte", "word_embeddings")


def _attribute(root, path: str):
    for name in path.split("."):
        root = getattr(root, name, None)
        if root is None:
            return None
    return root


def check_freeze(model_name: str, freeze_layers: int) -> None:
    """Refuse ``freeze_layers`` >= the base model's layer count, from its config alone."""
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(model_name)
    count = getattr(model_config, "num_hidden_layers", None) or getattr(
        model_config, "n_layer", None
    )
    if isinstance(count, int) and freeze_layers >= count:
        raise ArgumentError(
            f"freeze_layers={freeze_layers} would freeze every block: {model_name} has "
            f"{count}; pick at most {count - 1}"
        )


def freeze(model, layers: int) -> int:
    """Stop gradients at the embeddings and the lowest ``layers`` blocks; the parameters frozen.

    The head and the upper blocks still train; the backward pass ends at block ``layers``, which is
    where the time goes (a backward step costs about twice a forward one).
    """
    if layers == 0:
        return 0
    base = model.base_model
    blocks = next(
        (
            b
            for b in (_attribute(base, p) for p in _LAYER_PATHS)
            if isinstance(b, torch.nn.ModuleList)
        ),
        None,
    )
    if blocks is None:
        raise ArgumentError(
            f"freeze_layers={layers}: cannot find the transformer blocks of "
            f"{type(model).__name__}; use freeze_layers=0"
        )
    if layers >= len(blocks):
        raise ArgumentError(
            f"freeze_layers={layers} would freeze every block: {type(model).__name__} has "
            f"{len(blocks)}; pick at most {len(blocks) - 1}"
        )
    frozen = [m for m in (_attribute(base, p) for p in _EMBEDDING_PATHS) if m is not None]
    frozen += list(blocks[:layers])
    count = 0
    for module in frozen:
        for parameter in module.parameters():
            if parameter.requires_grad:
                parameter.requires_grad_(False)
                count += parameter.numel()
    return count


def set_dropout(model, probability: Optional[float]) -> int:
    """Set every dropout in ``model`` to ``probability`` (None: leave them); the modules changed.

    Modules, not the config: attention reads its probability from its ``nn.Dropout`` (BERT-likes)
    or a float ``attention_dropout`` (decoder LLMs), so this reaches both, and the config saved with
    the checkpoint keeps the model's own values.
    """
    if probability is None:
        return 0
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = float(probability)
            changed += 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = float(probability)
            changed += 1
    return changed
