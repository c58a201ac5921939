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

from .base import Encoder, Feature, ModelFamily


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

    if is_seq2seq_lm(checkpoint.config):  # monoT5-style: refuses the decoders' options itself
        return Seq2SeqFamily(
            checkpoint.tokenizer,
            checkpoint.config,
            checkpoint.name,
            prompt_format=prompt_format,
            instruction=instruction,
        )
    if is_causal_lm(checkpoint.config):
        return DecoderFamily(
            checkpoint.tokenizer,
            checkpoint.config,
            checkpoint.name,
            prompt_format=prompt_format,
            instruction=instruction,
        )
    from .late_interaction import detect_late_interaction

    late = detect_late_interaction(checkpoint, prompt_format=prompt_format, instruction=instruction)
    if late is not None:  # a PyLate ColBERT folder (modules.json + Dense + ColBERT config)
        return late
    for argument, value in (("instruction", instruction), ("prompt_format", prompt_format)):
        if value is not None:
            raise ValueError(
                f"{argument}= applies to decoder LLM rerankers (Qwen3-Reranker, "
                f"bge-reranker-v2-gemma); model={checkpoint.name!r} is a cross-encoder, leave it out"
            )
    from .heads import check_reranking_head

    check_reranking_head(checkpoint.config, checkpoint.name)  # not *ForTokenClassification & co
    return CrossEncoderFamily(checkpoint.tokenizer, checkpoint.config, checkpoint.name)


__all__ = ["Encoder", "Feature", "ModelFamily", "detect_family"]
