"""The networks of FlagEmbedding's layer-wise rerankers, in plain torch.

bge-reranker-v2-minicpm-layerwise (``LayerWiseMiniCPMForCausalLM``) and
bge-reranker-v2.5-gemma2-lightweight (``CostWiseGemmaForCausalLM``) ship their own modeling code,
written against transformers 4.3x-4.46: FlagEmbedding's copy of the MiniCPM code fails on
transformers >= 4.50 unless the config turns the cache off, and its Gemma 2 code fails on
transformers >= 4.47 (Gemma 2's decoder layer changed its arguments). crossrank computes the same
forward here, on any transformers version, from the checkpoint's own weights (same parameter
names, no ``trust_remote_code``):

- **MiniCPM layer-wise**: a Llama-style decoder whose embeddings are scaled by ``scale_emb`` and
  whose residual branches by ``scale_depth / sqrt(layers)``; after layer ``k`` (from
  ``start_layer``), the normed hidden state goes through head ``k - start_layer``, a
  ``hidden -> 1`` linear (``head_type="simple"``).
- **Gemma 2 lightweight**: Gemma 2 layers (attention as FlagEmbedding runs it: SDPA, so without
  the attention logit soft-capping; sliding window on even layers), per-layer ``hidden -> 1``
  heads with the final logit soft-capping, and **token compression**: before a layer in
  ``compress_layers``, each run of ``compress_ratio`` passage tokens is replaced by its mean, and
  positions restart from 0 over the shorter sequence.

Each model's :meth:`scores` gives the last real token's head logit for each requested
``(layer, head)`` output of a right-padded batch.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layerwise_checkpoint import (
    checkpoint_directory,
    complete_config,
    plain_config,
    read_state_dict,
)

# (hidden state after this many layers, index of the head that scores it)
Output = Tuple[int, int]


def _activation(name: str):
    from transformers.activations import ACT2FN

    return ACT2FN[name]


def _rotary(positions: torch.Tensor, dim: int, base: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin ``(rows, seq, dim)`` in float32 for integer ``positions`` ``(rows, seq)``."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=positions.device).float() / dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


class _Attention(nn.Module):
    """Grouped-query self-attention with rotary positions, through SDPA with a boolean mask."""

    def __init__(self, config, head_dim: int, float32_rotary: bool) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim, self.base = head_dim, config.rope_theta
        self.float32_rotary = float32_rotary  # MiniCPM rotates in float32, Gemma in the dtype
        # MiniCPM's "linear" RoPE scaling divides positions; its "dynamic" one changes nothing
        # up to max_position_embeddings, which max_length never exceeds (cap_max_length)
        scaling = getattr(config, "rope_scaling", None) or {}
        self.stretch = float(scaling["factor"]) if scaling.get("type") == "linear" else 1.0
        bias = bool(config.attention_bias)
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(hidden, self.kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(hidden, self.kv_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(self.heads * head_dim, hidden, bias=bias)

    def forward(self, x, mask, positions, scale: Optional[float]) -> torch.Tensor:
        rows, seq, _ = x.shape
        q = self.q_proj(x).view(rows, seq, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(rows, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(rows, seq, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = _rotary(positions / self.stretch, self.head_dim, self.base)
        if self.float32_rotary:
            q, k = (_rotate(t.float(), cos, sin).to(x.dtype) for t in (q, k))
        else:
            cos, sin = cos.to(x.dtype), sin.to(x.dtype)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        groups = self.heads // self.kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], scale=scale)
        return self.o_proj(out.transpose(1, 2).reshape(rows, seq, -1))


class _MLP(nn.Module):
    def __init__(self, config, activation: str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act = _activation(activation)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class _MiniCPMNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), eps

    def forward(self, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class _GemmaNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.zeros(size)), eps

    def forward(self, x):
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).type_as(x)


class _Head(nn.Module):
    """FlagEmbedding's ``LayerWiseHead`` / ``CostWiseHead``: one ``hidden -> 1`` linear."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear_head = nn.Linear(hidden, 1, bias=False)


class _Body(nn.Module):
    """``model.*`` of the checkpoint: embeddings, layers, final norm."""

    def __init__(self, config, layer, norm) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(layer(config, i) for i in range(config.num_hidden_layers))
        self.norm = norm(config.hidden_size, config.rms_norm_eps)


def _causal(mask: torch.Tensor, window: Optional[int] = None) -> torch.Tensor:
    """Boolean ``(rows, seq, seq)``: query i sees real key j <= i (and i - j < window)."""
    seq = mask.shape[1]
    index = torch.arange(seq, device=mask.device)
    allowed = index[None, :] <= index[:, None]
    if window is not None:
        allowed = allowed & (index[:, None] - index[None, :] < window)
    # a padding query also sees itself, so no row is all masked (SDPA would give NaN there)
    return (allowed[None] & mask.bool()[:, None, :]) | torch.eye(
        seq, dtype=torch.bool, device=mask.device
    )[None]


def _positions(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... on every row (right padding: a row's real tokens come first)."""
    return torch.arange(hidden.shape[1], device=hidden.device)[None].expand(hidden.shape[0], -1)


def _last(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's logit at its last real token (right padding)."""
    last = mask.long().sum(1) - 1
    return logits[torch.arange(logits.shape[0], device=logits.device), last]


class LayerWiseModel(nn.Module):
    """Base: weights loaded by parameter name, scores read at the last real token."""

    base_model_prefix = "model"

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def head_count(self) -> int:
        return len(self.lm_head) if isinstance(self.lm_head, nn.ModuleList) else 1

    def _head(self, index: int) -> nn.Linear:
        return (
            self.lm_head[index] if isinstance(self.lm_head, nn.ModuleList) else self.lm_head
        ).linear_head

    @classmethod
    def from_pretrained(cls, location: str, output_loading_info: bool = False, **options):
        """The model of checkpoint ``location`` in float32 (the ``AutoModel`` interface that
        :func:`crossrank.loading.load_weights` calls); ``options`` as for ``from_pretrained``."""
        directory = checkpoint_directory(location, options)
        config = complete_config(plain_config(directory), cls.kind)
        with torch.device("meta"):
            model = cls(config)
        state = read_state_dict(directory)
        result = model.load_state_dict(state, strict=False, assign=True)
        body = [key for key in result.missing_keys if not key.startswith("lm_head")]
        if body:  # a missing head is reported by crossrank.loading.load_weights
            raise OSError(f"{directory} lacks weights {', '.join(body[:4])}")
        model.float().eval()
        info = {
            "missing_keys": list(result.missing_keys),
            "unexpected_keys": list(result.unexpected_keys),
        }
        return (model, info) if output_loading_info else model


class LayerWiseMiniCPM(LayerWiseModel):
    """``LayerWiseMiniCPMForCausalLM`` (bge-reranker-v2-minicpm-layerwise), one-logit heads."""

    kind = "layerwise"

    def __init__(self, config) -> None:
        super().__init__(config)
        head_dim = config.hidden_size // config.num_attention_heads
        self.residual = config.scale_depth / math.sqrt(config.num_hidden_layers)

        def layer(config, index):
            block = nn.Module()
            block.self_attn = _Attention(config, head_dim, float32_rotary=True)
            block.mlp = _MLP(config, config.hidden_act)
            block.input_layernorm = _MiniCPMNorm(config.hidden_size, config.rms_norm_eps)
            block.post_attention_layernorm = _MiniCPMNorm(config.hidden_size, config.rms_norm_eps)
            return block

        self.model = _Body(config, layer, _MiniCPMNorm)
        heads = config.num_hidden_layers - config.start_layer + 1
        self.lm_head = (
            nn.ModuleList(_Head(config.hidden_size) for _ in range(heads))
            if config.head_multi
            else _Head(config.hidden_size)
        )

    def scores(self, input_ids, attention_mask, outputs: Sequence[Output], **_) -> torch.Tensor:
        """``(rows, len(outputs))`` head logits at each row's last real token."""
        hidden = self.model.embed_tokens(input_ids) * self.config.scale_emb
        positions = _positions(hidden, attention_mask)
        mask = _causal(attention_mask)
        states = _run_layers(self, hidden, attention_mask, positions, mask, outputs, self._layer)
        return _head_logits(self, states, outputs, softcap=None)

    def _layer(self, index, block, hidden, mask, positions):
        attended = block.self_attn(block.input_layernorm(hidden), mask, positions, None)
        hidden = hidden + attended * self.residual
        return hidden + block.mlp(block.post_attention_layernorm(hidden)) * self.residual


class LightWeightGemma2(LayerWiseModel):
    """``CostWiseGemmaForCausalLM`` (bge-reranker-v2.5-gemma2-lightweight), ``layer_wise=True``."""

    kind = "lightweight"

    def __init__(self, config) -> None:
        super().__init__(config)
        head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )

        def layer(config, index):
            block = nn.Module()
            block.self_attn = _Attention(config, head_dim, float32_rotary=False)
            block.mlp = _MLP(
                config, getattr(config, "hidden_activation", None) or "gelu_pytorch_tanh"
            )
            for name in (
                "input_layernorm",
                "post_attention_layernorm",
                "pre_feedforward_layernorm",
                "post_feedforward_layernorm",
            ):
                setattr(block, name, _GemmaNorm(config.hidden_size, config.rms_norm_eps))
            return block

        self.model = _Body(config, layer, _GemmaNorm)
        layers = range(config.start_layer, config.num_hidden_layers + 1, config.layer_sep)
        self.lm_head = nn.ModuleList(_Head(config.hidden_size) for _ in layers)
        self.scale = getattr(config, "query_pre_attn_scalar", head_dim) ** -0.5

    def scores(
        self,
        input_ids,
        attention_mask,
        outputs: Sequence[Output],
        compress_layers=(),
        compress_ratio: int = 1,
        query_lengths=None,
        prompt_lengths=None,
    ) -> torch.Tensor:
        """``(rows, len(outputs))`` head logits at each row's last real token; the passage
        (between ``query_lengths`` and ``prompt_lengths`` tokens) compressed before each layer in
        ``compress_layers`` (layer 0 excepted, as in FlagEmbedding) when ``compress_ratio > 1``."""
        hidden = self.model.embed_tokens(input_ids)
        hidden = hidden * torch.tensor(self.config.hidden_size**0.5, dtype=hidden.dtype)
        compress = set(compress_layers or ()) if compress_ratio > 1 else set()
        positions = _positions(hidden, attention_mask)
        wanted = sorted({layer for layer, _ in outputs})
        states = []
        for index, block in enumerate(self.model.layers[: wanted[-1]]):
            if index in wanted:
                states.append((self.model.norm(hidden), attention_mask))
            if index in compress and index != 0:
                hidden, attention_mask = compress_passages(
                    hidden, attention_mask, query_lengths, prompt_lengths, compress_ratio
                )
                positions = _positions(hidden, attention_mask)
            hidden = self._layer(index, block, hidden, attention_mask, positions)
        states.append((self.model.norm(hidden), attention_mask))
        return _head_logits(self, states, outputs, self.config.final_logit_softcapping)

    def _layer(self, index, block, hidden, attention_mask, positions):
        sliding = getattr(self.config, "sliding_window", None) if index % 2 == 0 else None
        mask = _causal(attention_mask, sliding)
        attended = block.self_attn(block.input_layernorm(hidden), mask, positions, self.scale)
        hidden = hidden + block.post_attention_layernorm(attended)
        mlp = block.mlp(block.pre_feedforward_layernorm(hidden))
        return hidden + block.post_feedforward_layernorm(mlp)


def _run_layers(model, hidden, attention_mask, positions, mask, outputs, layer):
    """Hidden states (normed) after each distinct output layer, ascending, with their masks."""
    wanted = sorted({index for index, _ in outputs})
    states = []
    for index, block in enumerate(model.model.layers[: wanted[-1]]):
        if index in wanted:
            states.append((model.model.norm(hidden), attention_mask))
        hidden = layer(index, block, hidden, mask, positions)
    states.append((model.model.norm(hidden), attention_mask))
    return states


def _head_logits(model, states, outputs: Sequence[Output], softcap: Optional[float]):
    """Output ``i`` reads the ``i``-th distinct layer's state through head ``outputs[i][1]``."""
    columns = []
    for (hidden, mask), (_, head) in zip(states, outputs):
        logits = model._head(head)(_last(hidden, mask))
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        columns.append(logits.float())
    return torch.cat(columns, dim=-1)


def compress_passages(hidden, attention_mask, query_lengths, prompt_lengths, ratio: int):
    """FlagEmbedding's ``token_compress``: each run of ``ratio`` passage tokens becomes their mean
    (the last run the mean of what it has); query and prompt tokens stay. Right padding."""
    lengths = attention_mask.long().sum(1).tolist()
    rows = []
    for row, (length, query, prompt) in enumerate(zip(lengths, query_lengths, prompt_lengths)):
        passage = hidden[row, query : length - prompt]
        keep = -(-passage.shape[0] // ratio)
        padded = passage.new_zeros((keep * ratio, passage.shape[1]))
        padded[: passage.shape[0]] = passage
        counts = torch.full((keep,), ratio, dtype=hidden.dtype, device=hidden.device)
        counts[-1:] = passage.shape[0] - (keep - 1) * ratio if keep else ratio
        weights = (1.0 / counts).repeat_interleave(ratio)[:, None]
        merged = (padded * weights).view(keep, ratio, -1).sum(1)
        rows.append(torch.cat([hidden[row, :query], merged, hidden[row, length - prompt : length]]))
    width = max(len(r) for r in rows)
    new_hidden = hidden.new_zeros((len(rows), width, hidden.shape[-1]))
    new_mask = torch.zeros((len(rows), width), dtype=attention_mask.dtype, device=hidden.device)
    for row, values in enumerate(rows):
        new_hidden[row, : len(values)] = values
        new_mask[row, : len(values)] = 1
    return new_hidden, new_mask
