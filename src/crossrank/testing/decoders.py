"""Tiny random decoder LLM rerankers (Qwen3, Qwen2, Gemma, Gemma 2, Llama) built on the spot.

Each tokenizer is trained here on the documented prompts (byte-level BPE for Qwen, a
SentencePiece-style BPE for Gemma), so the prompts tokenize as they do with the real models. The
prompts are written out here as the model cards document them, independently of crossrank's
families, so tests can build reference scores from them.

>>> from crossrank.testing import save_decoder
>>> path = save_decoder(tmp_path / "qwen3", "qwen3")              # doctest: +SKIP
>>> Reranker(path, max_length=128).prompt_format                  # doctest: +SKIP
'qwen3'
"""

from __future__ import annotations

import os

import torch

from .models import TINY_SIZES, WORDS, _tokenizer_class

DECODER_KINDS = ("qwen3", "qwen2", "gemma", "gemma2", "llama-qwen", "llama-gemma", "qwen3-seqcls")

# The prompts as their model cards document them, written out here independently of crossrank.
QWEN_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The tokenizers are trained on these texts, so every prompt piece is a known token.
_CORPUS = [QWEN_PREFIX, QWEN_SUFFIX, QWEN_INSTRUCTION, BGE_PROMPT, " ".join(WORDS), "yes no Yes No"]
_CORPUS += ["<Instruct>: \n<Query>: \n<Document>: A: B: "]


def qwen_tokenizer(words=(), vocab_size: int = 600):
    """A byte-level BPE with Qwen2's pre-tokenizer and chat tokens, trained on the prompts.

    ``words`` (e.g. a real model's word list) are trained on too, with a larger ``vocab_size``,
    so that English text takes about as many tokens as with a real tokenizer (benchmarks).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4 + _word_lines(words), trainer)
    return _tokenizer_class("Qwen2Tokenizer")(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )


def gemma_tokenizer(words=(), vocab_size: int = 800):
    """A SentencePiece-style BPE (``▁`` for spaces, byte fallback) with Gemma's special tokens;
    ``words`` and ``vocab_size`` as in :func:`qwen_tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"] + bytes_,
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4 + _word_lines(words), trainer)
    return _tokenizer_class("GemmaTokenizer")(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _word_lines(words) -> list:
    """``words`` as lines of text, each word with a space before it, as it follows another."""
    words = list(words)
    return [" " + " ".join(words[i : i + 64]) for i in range(0, len(words), 64)]


def build_decoder(kind: str, seed: int = 0):
    """A tiny random ``*ForCausalLM`` (hidden 32, 2 layers) and its tokenizer.

    ``kind``: one of :data:`DECODER_KINDS`; ``"qwen3-seqcls"`` is a Qwen3 with a classification
    head (scored by that head, not as an LLM).
    """
    import transformers

    torch.manual_seed(seed)
    tokenizer = gemma_tokenizer() if "gemma" in kind else qwen_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        **TINY_SIZES,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if kind == "qwen3":
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(head_dim=8, **common))
    elif kind == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    elif kind == "gemma":
        config = transformers.GemmaConfig(head_dim=8, bos_token_id=tokenizer.bos_token_id, **common)
        model = transformers.GemmaForCausalLM(config)
    elif kind == "gemma2":  # with Gemma 2's logit soft-capping
        config = transformers.Gemma2Config(
            head_dim=8, bos_token_id=tokenizer.bos_token_id, final_logit_softcapping=3.0, **common
        )
        model = transformers.Gemma2ForCausalLM(config)
    elif kind in ("llama-qwen", "llama-gemma"):
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    elif kind == "qwen3-seqcls":
        config = transformers.Qwen3Config(head_dim=8, num_labels=1, **common)
        model = transformers.Qwen3ForSequenceClassification(config)
    else:
        raise ValueError(f"kind must be one of {DECODER_KINDS}, got {kind!r}")
    return tokenizer, model.eval()


def save_decoder(path, kind: str, seed: int = 0) -> str:
    """Build a tiny decoder (:func:`build_decoder`) and save it with its tokenizer at ``path``."""
    tokenizer, model = build_decoder(kind, seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return os.fspath(path)
