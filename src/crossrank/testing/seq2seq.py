"""Tiny random sequence-to-sequence rerankers (monoT5-style T5 and mT5) built on the spot.

The tokenizer is a SentencePiece-style Unigram (``▁`` for spaces, runs of spaces folded into one,
``</s>`` appended) whose vocabulary holds the monoT5 prompt's words and the ``▁true``/``▁false``
label pieces, so the prompt tokenizes as it does with castorini's checkpoints. The prompt is written
out here as monoT5 documents it, independently of crossrank's family, so tests can build reference
scores from it.

>>> from crossrank.testing.seq2seq import save_seq2seq
>>> path = save_seq2seq(tmp_path / "monot5", "t5")               # doctest: +SKIP
>>> Reranker(path, max_length=128).family                        # doctest: +SKIP
'seq2seq reranker'
"""

from __future__ import annotations

import os
import string

import torch

from .models import TINY_SIZES, WORDS, _tokenizer_class

SEQ2SEQ_KINDS = ("t5", "mt5")

# monoT5's input as castorini, InRanker and `rerankers` format it; the answer is "true" or "false".
MONOT5_TEMPLATE = "Query: {query} Document: {text} Relevant:"


def t5_tokenizer():
    """A T5-style tokenizer (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2) that knows the monoT5 prompt."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    chars = list(string.ascii_letters + string.digits + ".,;:!?'\"()-")
    prompt_words = ["Query:", "Document:", "Relevant:", "Query", "Document", "Relevant"]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -2.0) for w in WORDS + prompt_words + ["true", "false"]]
    # bare "true"/"false" too: a tokenizer may hold both, and the "▁" pieces must win (rerankers)
    pieces += [("true", -3.0), ("false", -3.0), ("\u2581", -6.0)]
    pieces += [("\u2581" + c, -7.0) for c in chars] + [(c, -8.0) for c in chars]
    pieces = list({piece: score for piece, score in pieces}.items())
    tok = Tokenizer(models.Unigram(pieces, 2))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")  # as T5's tokenizer.json does
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return _tokenizer_class("T5Tokenizer")(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=512,
    )


def build_seq2seq(kind: str = "t5", seed: int = 0):
    """A tiny random ``*ForConditionalGeneration`` (width 32, 2 + 2 layers) and its tokenizer.

    ``kind``: ``"t5"`` (T5 v1.0 like monoT5: ReLU, tied embeddings) or ``"mt5"`` (mT5: gated GELU,
    untied embeddings).
    """
    import transformers

    if kind not in SEQ2SEQ_KINDS:
        raise ValueError(f"kind must be one of {SEQ2SEQ_KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    tokenizer = t5_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        d_model=TINY_SIZES["hidden_size"],
        d_kv=TINY_SIZES["hidden_size"] // TINY_SIZES["num_attention_heads"],
        d_ff=TINY_SIZES["intermediate_size"],
        num_layers=TINY_SIZES["num_hidden_layers"],
        num_decoder_layers=TINY_SIZES["num_hidden_layers"],
        num_heads=TINY_SIZES["num_attention_heads"],
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    if kind == "t5":
        model = transformers.T5ForConditionalGeneration(transformers.T5Config(**common))
    else:
        # an untied head at the default init gives logits up to ~20 and label differences near
        # -10, where float32 rounding reaches a few 1e-6; half the init keeps them small
        config = transformers.MT5Config(
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            initializer_factor=0.5,
            **common,
        )
        model = transformers.MT5ForConditionalGeneration(config)
    return tokenizer, model.eval()


def save_seq2seq(path, kind: str = "t5", seed: int = 0) -> str:
    """Build a tiny seq2seq reranker (:func:`build_seq2seq`) and save it with its tokenizer."""
    tokenizer, model = build_seq2seq(kind, seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return os.fspath(path)


def monot5_reference(model_dir, pairs, max_length: int = 512):
    """monoT5 scores straight from transformers, one pair at a time: logit(▁true) − logit(▁false)
    at the first decoder step, on the whole prompt tokenized at once (as `rerankers` does).

    Its sigmoid is `rerankers`' ``T5Ranker`` score, softmax([false, true])[true].
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    true, false = tokenizer.convert_tokens_to_ids(["\u2581true", "\u2581false"])
    start = torch.tensor([[model.config.decoder_start_token_id]])
    scores = []
    for query, passage in pairs:
        text = MONOT5_TEMPLATE.format(query=query, text=passage)
        ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids, decoder_input_ids=start).logits[0, 0]
        scores.append(float(logits[true] - logits[false]))
    return scores
