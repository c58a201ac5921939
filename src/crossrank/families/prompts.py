"""The decoder LLM rerankers' prompt formats: their fixed texts, label tokens and detection.

A decoder reranker reads one prompt per (query, passage) pair and scores the next-token logits of
its label tokens. Which prompt a checkpoint was trained with is read from its config; where the
config cannot tell (a ``qwen2`` checkpoint may be mxbai-rerank-v2 or fine-tuned on the
Qwen3-Reranker prompt, a Llama may be anything), the checkpoint is refused with the
``prompt_format=`` choices named, never scored with a guessed prompt.

>>> from types import SimpleNamespace
>>> detect_prompt_format(SimpleNamespace(model_type="qwen3"), None, None, "m")
'qwen3'
>>> detect_prompt_format(SimpleNamespace(model_type="qwen2"), None, "mxbai", "m")
'mxbai'
"""

from __future__ import annotations

from typing import Dict, List, Optional

from ..settings import PROMPT_FORMATS

# Qwen3-Reranker's model card.
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
# FlagEmbedding's FlagLLMReranker (bge-reranker-v2-gemma).
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)
# The mxbai-rerank package's MxbaiRerankV2 (mxbai-rerank-base-v2 / -large-v2).
MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, "
    "then provide your binary relevance judgment (0 for not relevant, 1 for relevant).\n"
    "Relevance:"
)

# What each format is, for error messages: a user picks prompt_format= from these words.
FORMAT_WORDS: Dict[str, str] = {
    "qwen3": "Qwen3-Reranker: chat prompt, logit('yes') - logit('no')",
    "bge": "bge-reranker-v2-gemma / FlagLLMReranker: 'A: q / B: p' prompt, the 'Yes' logit",
    "mxbai": "mxbai-rerank-base-v2 / -large-v2: 'query: / document:' prompt, logit('1') - logit('0')",
}
# Model types whose checkpoints are trained with one prompt only (their reference rerankers).
FORMAT_OF_MODEL_TYPE = {"qwen3": "qwen3", "gemma": "bge", "gemma2": "bge"}
# Decoder model types a config without declared architectures is taken as an LLM of.
DECODER_MODEL_TYPES = (*FORMAT_OF_MODEL_TYPE, "qwen2")


def is_causal_lm(config) -> bool:
    """True when ``config`` describes a decoder LLM checkpoint (``*ForCausalLM``).

    The declared architectures decide; a ``Qwen3ForSequenceClassification`` stays a classifier.
    Without them, the model type does.
    """
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        return any(name.endswith("ForCausalLM") for name in architectures)
    return getattr(config, "model_type", None) in DECODER_MODEL_TYPES


def choices_text() -> str:
    """The ``prompt_format=`` choices, each with what it is (for error messages)."""
    return "; ".join(f"prompt_format={name!r} ({FORMAT_WORDS[name]})" for name in PROMPT_FORMATS)


def detect_prompt_format(config, tokenizer, prompt_format: Optional[str], name: str) -> str:
    """The prompt family of a decoder checkpoint: ``prompt_format`` if given, else its model type's.

    A model type trained with more than one prompt (``qwen2``: mxbai-rerank-v2 and Qwen
    fine-tunes) or with none known is refused with the choices named. ``tokenizer`` is unused: a
    Qwen vocabulary (chat markers, yes/no, 0/1) is shared by the Qwen3 and mxbai prompts alike.
    """
    if prompt_format is not None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt_format must be one of {PROMPT_FORMATS} or None, got {prompt_format!r}"
            )
        return prompt_format
    model_type = getattr(config, "model_type", None)
    if model_type in FORMAT_OF_MODEL_TYPE:
        return FORMAT_OF_MODEL_TYPE[model_type]
    raise ValueError(
        f"model={name!r} is a decoder LLM of type {model_type!r} whose prompt crossrank cannot "
        f"tell from its config (checkpoints of this type are trained with different prompts), "
        f"so it does not guess: pass {choices_text()}."
    )


def label_token_ids(tokenizer, prompt_format: str) -> List[int]:
    """The next-token ids a score reads: ``[no, yes]`` for ``"qwen3"``, ``[0, 1]`` for
    ``"mxbai"`` (both scored like a 2-logit head, second minus first), ``[Yes]`` for ``"bge"``."""
    if prompt_format == "bge":
        return tokenizer("Yes", add_special_tokens=False)["input_ids"][:1]
    if prompt_format == "mxbai":  # MxbaiRerankV2: the first token of "0" and of "1"
        return [tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in ("0", "1")]
    ids = []
    for token in ("no", "yes"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no {token!r} token, which the {prompt_format!r} prompt "
                "format scores; is this a Qwen3-Reranker checkpoint?"
            )
        ids.append(token_id)
    return ids
