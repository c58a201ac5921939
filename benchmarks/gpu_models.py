"""Random models and pairs for the GPU check, built on the spot (no hub, nothing installed).

Speed does not depend on the weights' values, only on the shapes: a BERT cross-encoder of any
size with the WordPiece tokenizer of ``crossrank.testing`` (one token per word), a Qwen3 decoder
with the testing Qwen tokenizer, and texts whose token counts follow SciFact's
(:mod:`crossrank.testing.lengths`).

    >>> from benchmarks.gpu_models import scifact_like_pairs
    >>> pairs = scifact_like_pairs(3, max_length=512)
    >>> len(pairs), len(pairs[0])
    (3, 2)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import List

import torch

from crossrank.testing import WORDS
from crossrank.testing.lengths import scifact_like_lengths


def build_model(
    path: Path, layers: int, hidden: int, heads: int, intermediate: int, init: float = 0.02
) -> str:
    """A random BERT cross-encoder; ``init``: weight std (BERT's 0.02; tiny models need more
    for their scores to spread)."""
    from transformers import BertConfig, BertForSequenceClassification

    from crossrank.testing import build_tokenizer

    tokenizer = build_tokenizer("bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,  # bge-base-sized embeddings; the small tokenizer uses the first ids
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=init,
    )
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def build_decoder_model(
    path: Path, layers: int, hidden: int, heads: int, intermediate: int, kv_heads: int
) -> str:
    """A random Qwen3 decoder reranker (Qwen3-Reranker's prompt and yes/no tokens), saved in
    float16; the testing tokenizer's small vocabulary (the head reads one position anyway)."""
    import transformers

    from crossrank.testing.decoders import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads if hidden // heads >= 8 else 8,
        intermediate_size=intermediate,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = transformers.Qwen3ForCausalLM(config).eval().to(torch.float16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, count)))


def scifact_like_pairs(
    count: int, max_length: int = 512, min_tokens: int = 0, seed: int = 0
) -> List[List[str]]:
    """``count`` [query, passage] pairs whose token counts (one token per word, 3 special tokens)
    follow SciFact's at ``max_length`` 512, at least ``min_tokens``; a model with a shorter
    ``max_length`` truncates them, as it would SciFact's passages."""
    rng = random.Random(seed)
    pairs = []
    for total in scifact_like_lengths(count, 512, seed):
        total = max(total, min_tokens)
        query = rng.randint(8, 20)
        pairs.append([words(rng, query), words(rng, total - query - 3)])
    return pairs


def make_queries(num_queries: int, docs: int, lengths: range, seed: int = 0):
    """Queries of 4-12 words, each with ``docs`` passages of ``lengths`` words (one token each)."""
    rng = random.Random(seed)
    return [
        (
            words(rng, rng.randint(4, 12)),
            [words(rng, rng.randint(lengths.start, lengths.stop)) for _ in range(docs)],
        )
        for _ in range(num_queries)
    ]
