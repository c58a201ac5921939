"""Model families: how a kind of checkpoint turns (query, passage) pairs into inputs and scores.

- :mod:`~crossrank.families.cross_encoder`: ``*ForSequenceClassification`` cross-encoders.
- :mod:`~crossrank.families.decoder`: decoder LLM rerankers (Qwen3-Reranker, bge-reranker-v2-gemma).
- :mod:`~crossrank.families.layerwise`: FlagEmbedding's layer-wise and lightweight LLM rerankers.
- :mod:`~crossrank.families.seq2seq`: seq2seq rerankers (monoT5): "true"/"false" at step one.
- :mod:`~crossrank.families.late_interaction`: PyLate ColBERT checkpoints, MaxSim.

:func:`detect_family` is the one place that decides, from the checkpoint's config.
"""

from __future__ import annotations

from typing import Optional

from .base import Encoder, Feature, ModelFamily, refuse_prompt_options


def detect_family(
    checkpoint,
    *,
    prompt_format: Optional[str] = None,
    instruction: Optional[str] = None,
) -> ModelFamily:
    """The family of an opened checkpoint (tokenizer + config), decided by its config.

    Declared ``*ForCausalLM`` architectures (or, without any, a decoder model type) make a decoder
    LLM reranker; everything else is a cross-encoder. Options that only one family takes are refused
    on the other with the option named.
    """
    from .cross_encoder import CrossEncoderFamily
    from .decoder import DecoderFamily, is_causal_lm
    from .layerwise import layerwise_family
    from .seq2seq import Seq2SeqFamily, is_seq2seq_lm

    layered = layerwise_family(checkpoint, prompt_format=prompt_format, instruction=instruction)
    if layered is not None:  # FlagEmbedding's layer-wise/lightweight: before the *ForCausalLM rule
        return layered

    prompt_options = {"instruction": instruction, "prompt_format": prompt_format}
    if is_seq2seq_lm(checkpoint.config):
        kind = "seq2seq (monoT5-style) reranker with a fixed prompt"
        refuse_prompt_options(checkpoint.name, kind, **prompt_options)
        return Seq2SeqFamily(checkpoint.tokenizer, checkpoint.config, checkpoint.name)
    if is_causal_lm(checkpoint.config):
        return DecoderFamily(
            checkpoint.tokenizer,
            checkpoint.config,
            checkpoint.name,
            prompt_format=prompt_format,
            instruction=instruction,
        )
    from .late_interaction import detect_late_interaction

    late = detect_late_interaction(checkpoint)
    if late is not None:  # a PyLate ColBERT folder (modules.json + Dense + ColBERT config)
        refuse_prompt_options(
            checkpoint.name, "late-interaction (ColBERT) reranker", **prompt_options
        )
        return late
    refuse_prompt_options(checkpoint.name, "cross-encoder", **prompt_options)
    from .heads import check_reranking_head

    check_reranking_head(checkpoint.config, checkpoint.name)  # not *ForTokenClassification & co
    return CrossEncoderFamily(checkpoint.tokenizer, checkpoint.config, checkpoint.name)


__all__ = ["Encoder", "Feature", "ModelFamily", "detect_family"]
