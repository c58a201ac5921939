"""Which saved heads crossrank scores as a cross-encoder, and the refusal of the others.

A checkpoint saved with another task's head (``BertForTokenClassification``,
``*ForMaskedLM``, ``*ForQuestionAnswering``, ...) would load into a sequence classifier with
part of its head (e.g. the pooler) initialised at random: scores partly noise, with only a
warning. Such a checkpoint is refused from its config, before any weights load. A bare encoder
(``BertModel``: an embedding or base model) is left to the weight check of
:func:`crossrank.loading.load_weights`, which names the missing head.

>>> task_head("BertForTokenClassification"), task_head("BertModel")
('TokenClassification', None)
"""

from __future__ import annotations

import re
from typing import Optional

from ..errors import ModelLoadError

# The head a cross-encoder reranker is saved with.
RERANKING_HEAD = "SequenceClassification"
# Words for the heads people most often load by mistake (any other "*ForX" is refused too).
_HEAD_WORDS = {
    "TokenClassification": "a token-classification (NER) head",
    "MaskedLM": "a masked-LM head",
    "QuestionAnswering": "a question-answering head",
    "MultipleChoice": "a multiple-choice head",
    "PreTraining": "a pre-training head",
    "NextSentencePrediction": "a next-sentence-prediction head",
    "CausalLM": "a causal-LM head",
}


def task_head(architecture: str) -> Optional[str]:
    """The task of a ``*ForTask`` architecture name (``"MaskedLM"``), None for a bare model."""
    match = re.search(r"For([A-Z][A-Za-z0-9]*)$", architecture)
    return match.group(1) if match else None


def check_reranking_head(config, name: str) -> None:
    """Refuse a checkpoint whose declared architectures are all another task's head.

    Raises :class:`~crossrank.errors.ModelLoadError` naming the head and the way to make a
    reranker of the checkpoint (``crossrank train``); a config without architectures, with a
    ``*ForSequenceClassification`` one or with a bare model passes.
    """
    architectures = list(getattr(config, "architectures", None) or [])
    heads = [task_head(a) for a in architectures]
    if not architectures or any(h in (None, RERANKING_HEAD) for h in heads):
        return
    words = _HEAD_WORDS.get(heads[0], f"a {heads[0]} head")
    raise ModelLoadError(
        f"model={name!r} is saved as {architectures[0]} ({words}), not as a reranking head "
        f"(*For{RERANKING_HEAD} cross-encoder or *ForCausalLM LLM reranker): loaded as a "
        "reranker part of its head would be random, so its scores would be noise. Fine-tune it "
        f"into a reranker first: `crossrank train DATA_DIR --model {name} --output DIR`, then "
        "load DIR."
    )
