"""A PyLate / sentence-transformers ColBERT checkpoint on disk: its settings and its weights.

PyLate saves a ColBERT model as a sentence-transformers folder: ``modules.json`` lists a
``Transformer`` (the encoder, at the folder's root) followed by one or more ``Dense`` projections
(``1_Dense/``: ``config.json`` + ``model.safetensors``), and ``config_sentence_transformers.json``
carries the late-interaction settings (``query_prefix``, ``document_prefix``, ``query_length``,
``document_length``, ``do_query_expansion``, ``attend_to_expansion_tokens``, ``skiplist_words``;
``model_type: "ColBERT"`` or ``similarity_fn_name: "MaxSim"``). That pair of files is what marks a
checkpoint as late-interaction here; its name never does.

Checkpoints of the Stanford ``colbert-ai`` library (``architectures: ["HF_ColBERT"]``, e.g.
answerai-colbert-small-v1, colbertv2.0) are read the way PyLate reads them: the encoder and a
bias-free ``linear`` projection in one weights file, the settings from ``artifact.metadata``
(``query_token_id``, ``doc_token_id``, ``query_maxlen``, ``doc_maxlen``, ``attend_to_mask_tokens``;
prefixes ``[unused0]``/``[unused1]`` where it is absent).

>>> settings = read_colbert_settings(checkpoint)                 # doctest: +SKIP
>>> settings.query_length, settings.document_prefix
(32, '[D] ')
"""

from __future__ import annotations

import importlib
import json
import os
import string
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..errors import ModelLoadError

# PyLate's defaults for what a config_sentence_transformers.json leaves out (models/colbert.py).
DEFAULT_QUERY_PREFIX = "[Q] "
DEFAULT_DOCUMENT_PREFIX = "[D] "
DEFAULT_QUERY_LENGTH = 32
DEFAULT_DOCUMENT_LENGTH = 180
_TRANSFORMER = "sentence_transformers.models.Transformer"
_DENSE = ("sentence_transformers.models.Dense", "pylate.models.Dense.Dense")
STANFORD_ARCHITECTURE = "HF_ColBERT"


@dataclass(frozen=True)
class DenseLayer:
    """One saved ``Dense`` projection: its subfolder and ``config.json`` (``path=""`` and no sizes:
    a Stanford checkpoint's ``linear`` weight in the root weights file, sized by that weight)."""

    path: str
    in_features: int
    out_features: int
    bias: bool = True
    activation: str = "torch.nn.modules.linear.Identity"
    use_residual: bool = False


@dataclass(frozen=True)
class ColbertSettings:
    """How a ColBERT checkpoint encodes queries and documents (PyLate's meaning and defaults)."""

    query_prefix: str = DEFAULT_QUERY_PREFIX
    document_prefix: str = DEFAULT_DOCUMENT_PREFIX
    query_length: int = DEFAULT_QUERY_LENGTH
    document_length: int = DEFAULT_DOCUMENT_LENGTH
    do_query_expansion: bool = True
    attend_to_expansion_tokens: bool = False
    skiplist_words: Tuple[str, ...] = tuple(string.punctuation)
    do_lower_case: bool = False
    dense: Tuple[DenseLayer, ...] = field(default_factory=tuple)


def checkpoint_file(checkpoint, filename: str) -> Optional[str]:
    """The local path of ``filename`` in ``checkpoint`` (a directory or a cached hub id), or None."""
    if os.path.isdir(checkpoint.location):
        path = os.path.join(checkpoint.location, filename)
        return path if os.path.isfile(path) else None
    from transformers.utils import cached_file

    options = {k: v for k, v in checkpoint.options.items() if k in ("local_files_only", "revision")}
    try:
        return cached_file(
            checkpoint.location,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **options,
        )
    except OSError:
        return None


def _json(checkpoint, filename: str) -> Optional[Any]:
    path = checkpoint_file(checkpoint, filename)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"model={checkpoint.name!r}: {filename} cannot be read ({error})"
        ) from error


def _is_bare_encoder(config) -> bool:
    """True for a checkpoint whose weights are a bare encoder (``BertModel``, ``ModernBertModel``):
    the only kind that can be a PyLate ColBERT, so other checkpoints never cost a file lookup."""
    architectures = getattr(config, "architectures", None) or []
    return not architectures or all(name.endswith("Model") for name in architectures)


def read_colbert_settings(checkpoint) -> Optional[ColbertSettings]:
    """The ColBERT settings of ``checkpoint``, or None when it is not a PyLate ColBERT checkpoint.

    A ColBERT checkpoint is a sentence-transformers folder whose ``modules.json`` is a
    ``Transformer`` followed only by ``Dense`` projections, with a
    ``config_sentence_transformers.json`` that says ``model_type: "ColBERT"`` or
    ``similarity_fn_name: "MaxSim"``.
    """
    if (getattr(checkpoint.config, "architectures", None) or []) == [STANFORD_ARCHITECTURE]:
        return _stanford_settings(checkpoint)
    if not _is_bare_encoder(checkpoint.config):
        return None
    modules = _json(checkpoint, "modules.json")
    if not isinstance(modules, list) or len(modules) < 2:
        return None
    kinds = [module.get("type") for module in modules if isinstance(module, dict)]
    if kinds[0] != _TRANSFORMER or any(kind not in _DENSE for kind in kinds[1:]):
        return None
    config = _json(checkpoint, "config_sentence_transformers.json") or {}
    if config.get("model_type") != "ColBERT" and config.get("similarity_fn_name") != "MaxSim":
        return None
    dense = tuple(_dense_layer(checkpoint, module["path"]) for module in modules[1:])
    transformer = _json(checkpoint, "sentence_bert_config.json") or {}
    values: Dict[str, Any] = {
        key: config[key]
        for key in (
            "query_prefix",
            "document_prefix",
            "query_length",
            "document_length",
            "do_query_expansion",
            "attend_to_expansion_tokens",
        )
        if config.get(key) is not None
    }
    if config.get("skiplist_words") is not None:
        values["skiplist_words"] = tuple(config["skiplist_words"])
    settings = ColbertSettings(
        **values, do_lower_case=bool(transformer.get("do_lower_case", False)), dense=dense
    )
    if not settings.do_query_expansion:  # PyLate: no expansion tokens, so none to attend to
        settings = replace(settings, attend_to_expansion_tokens=False)
    return settings


def _stanford_settings(checkpoint) -> ColbertSettings:
    """A Stanford ``colbert-ai`` checkpoint's settings, with PyLate's fallbacks."""
    metadata = _json(checkpoint, "artifact.metadata") or {}
    settings = ColbertSettings(
        query_prefix=metadata.get("query_token_id") or "[unused0]",
        document_prefix=metadata.get("doc_token_id") or "[unused1]",
        query_length=metadata.get("query_maxlen") or DEFAULT_QUERY_LENGTH,
        document_length=metadata.get("doc_maxlen") or DEFAULT_DOCUMENT_LENGTH,
        attend_to_expansion_tokens=bool(metadata.get("attend_to_mask_tokens", False)),
        dense=(DenseLayer(path="", in_features=0, out_features=0, bias=False),),
    )
    return settings


def _dense_layer(checkpoint, path: str) -> DenseLayer:
    config = _json(checkpoint, f"{path}/config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(
            f"model={checkpoint.name!r} lists a Dense projection at {path}/ without its config.json"
        )
    return DenseLayer(
        path=path,
        in_features=int(config["in_features"]),
        out_features=int(config["out_features"]),
        bias=bool(config.get("bias", True)),
        activation=config.get("activation_function", "torch.nn.modules.linear.Identity"),
        use_residual=bool(config.get("use_residual", False)),
    )


def _activation(name: str, model_name: str):
    """A torch activation module from its dotted class name (only ``torch.nn`` ones are built)."""
    module_name, _, class_name = name.rpartition(".")
    if not module_name.startswith("torch.nn"):
        raise ModelLoadError(
            f"model={model_name!r}: a Dense projection's activation {name!r} is not a torch.nn "
            "module; crossrank builds torch.nn activations only"
        )
    return getattr(importlib.import_module(module_name), class_name)()


def _dense_state(checkpoint, layer: DenseLayer) -> Dict[str, Any]:
    folder = f"{layer.path}/" if layer.path else ""
    path = checkpoint_file(checkpoint, f"{folder}model.safetensors")
    if path is not None:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as weights:  # only the projection's tensors
            names = [n for n in weights.keys() if n.split(".")[0] in ("linear", "residual")]
            return {name: weights.get_tensor(name) for name in names}
    path = checkpoint_file(checkpoint, f"{folder}pytorch_model.bin")
    if path is None:
        raise ModelLoadError(
            f"model={checkpoint.name!r} has no weights for its Dense projection {layer.path}/ "
            "(model.safetensors or pytorch_model.bin): its scores would be random"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.split(".")[0] in ("linear", "residual")}


class ColbertModel:
    """Builds the torch module of a ColBERT checkpoint: the encoder and its projections.

    Stands where the other families put a transformers ``AutoModelFor...`` class
    (:meth:`from_pretrained` with the same keywords), so the torch backend loads it unchanged.
    """

    def __init__(self, checkpoint, settings: ColbertSettings) -> None:
        self.checkpoint = checkpoint
        self.settings = settings

    def from_pretrained(self, location: str, output_loading_info: bool = False, **options):
        """``(module, loading info)``: the encoder's missing weights are reported under ``encoder.``."""
        from transformers import AutoModel

        encoder, info = AutoModel.from_pretrained(location, output_loading_info=True, **options)
        projections = []
        for layer in self.settings.dense:
            state = _dense_state(self.checkpoint, layer)
            if not layer.out_features and "linear.weight" in state:  # sized by its weight
                out_features, in_features = state["linear.weight"].shape
                layer = replace(layer, in_features=in_features, out_features=out_features)
            projection = Projection(layer, _activation(layer.activation, self.checkpoint.name))
            missing, _ = projection.load_state_dict(state, strict=False)
            if missing:
                raise ModelLoadError(
                    f"model={self.checkpoint.name!r}: the Dense projection {layer.path}/ lacks "
                    f"{', '.join(missing)}; its scores would be random"
                )
            projections.append(projection)
        module = LateInteractionModule(encoder, projections)
        # the pooler is never used for token embeddings: its absence changes no score
        missing = [f"encoder.{k}" for k in info.get("missing_keys", ()) if "pooler." not in k]
        return (module, {**info, "missing_keys": missing}) if output_loading_info else module


class Projection(torch.nn.Module):
    """PyLate's ``Dense``: ``activation(linear(x))`` (+ a residual where it was trained with one)."""

    def __init__(self, layer: DenseLayer, activation) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias)
        self.activation_function = activation
        self.use_residual = layer.use_residual
        self.residual = None
        if layer.use_residual and layer.in_features != layer.out_features:
            self.residual = torch.nn.Linear(layer.in_features, layer.out_features, bias=False)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        projected = self.activation_function(self.linear(embeddings))
        if self.use_residual:
            residual = embeddings if self.residual is None else self.residual(embeddings)
            projected = projected + residual
        return projected


class LateInteractionModule(torch.nn.Module):
    """Token embeddings of a ColBERT checkpoint: encoder, then its projections, L2-normalized."""

    base_model_prefix = "encoder"

    def __init__(self, encoder, projections: List[torch.nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.projections = torch.nn.ModuleList(projections)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(rows, tokens, dim)`` unit vectors in float32, whatever dtype the model runs in
        (normalized after the upcast, so half-precision rounding does not enter the norm)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        for projection in self.projections:
            hidden = projection(hidden)
        return torch.nn.functional.normalize(hidden.float(), p=2, dim=-1)


__all__ = [
    "ColbertModel",
    "LateInteractionModule",
    "Projection",
    "ColbertSettings",
    "DenseLayer",
    "checkpoint_file",
    "read_colbert_settings",
]
