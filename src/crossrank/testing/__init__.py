"""Test support: tiny random checkpoints built on the spot, shared inputs, service and score checks.

Used by crossrank's own tests, both integrations' tests, the benchmarks and the notebooks, so that
none of them needs network access or committed weights. Needs only crossrank's own dependencies
(the service helpers also need the ``serve`` extra, imported when called).

- :mod:`~crossrank.testing.models`: tiny encoder cross-encoders, MiniLM locator, reference scores
- :mod:`~crossrank.testing.decoders`: tiny decoder LLM rerankers and their documented prompts
- :mod:`~crossrank.testing.layerwise`: tiny FlagEmbedding layer-wise / lightweight LLM rerankers
- :mod:`~crossrank.testing.seq2seq`: tiny monoT5-style T5 / mT5 rerankers and their prompt
- :mod:`~crossrank.testing.colbert`: tiny PyLate ColBERT checkpoints, MaxSim references
- :mod:`~crossrank.testing.data`: shared query–passage pairs, a tiny BEIR dataset, its TrainConfig
- :mod:`~crossrank.testing.server`: uvicorn on a free port, JSON posts, Prometheus samples
- :mod:`~crossrank.testing.checks`: ranking equality, ranking agreement, counted calls

>>> from crossrank.testing import PANDA_PAIRS, save_model
>>> path = save_model(tmp_path / "bert", "bert")                # doctest: +SKIP
>>> Reranker(path, max_length=128).compute_score(PANDA_PAIRS)   # doctest: +SKIP
"""

from __future__ import annotations

from .checks import assert_same_ranking, concordant_fraction, count_calls, expected_ranking
from .colbert import save_colbert
from .data import (
    BACKEND_PAIRS,
    LONG_PASSAGE,
    PANDA_DOCS,
    PANDA_PAIRS,
    PANDA_QUERY,
    SCORING_PAIRS,
    tiny_train_config,
    write_tiny_beir,
    write_titled_corpus,
)
from .decoders import (
    BGE_PROMPT,
    DECODER_KINDS,
    QWEN_INSTRUCTION,
    QWEN_PREFIX,
    QWEN_SUFFIX,
    build_decoder,
    gemma_tokenizer,
    qwen_tokenizer,
    save_decoder,
)
from .layerwise import LAYERWISE_KINDS, save_layerwise
from .models import (
    MINILM_INSTALL,
    TINY_MODEL_KINDS,
    WORDS,
    build_model,
    build_tokenizer,
    minilm_dir,
    reference_scores,
    save_model,
)
from .seq2seq import SEQ2SEQ_KINDS, save_seq2seq
from .server import metric, post_json, serving, stub_service

__all__ = [
    "BACKEND_PAIRS",
    "BGE_PROMPT",
    "DECODER_KINDS",
    "LAYERWISE_KINDS",
    "LONG_PASSAGE",
    "MINILM_INSTALL",
    "PANDA_DOCS",
    "PANDA_PAIRS",
    "PANDA_QUERY",
    "QWEN_INSTRUCTION",
    "QWEN_PREFIX",
    "QWEN_SUFFIX",
    "SCORING_PAIRS",
    "SEQ2SEQ_KINDS",
    "TINY_MODEL_KINDS",
    "WORDS",
    "assert_same_ranking",
    "build_decoder",
    "build_model",
    "build_tokenizer",
    "concordant_fraction",
    "count_calls",
    "expected_ranking",
    "gemma_tokenizer",
    "metric",
    "minilm_dir",
    "post_json",
    "qwen_tokenizer",
    "reference_scores",
    "save_decoder",
    "save_layerwise",
    "save_colbert",
    "save_model",
    "save_seq2seq",
    "serving",
    "stub_service",
    "tiny_train_config",
    "write_tiny_beir",
    "write_titled_corpus",
]
