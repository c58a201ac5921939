"""One benchmark contender in its own process: load, warm up, time the calls, report peak RSS.

Run by ``throughput`` (and ``memory``) with the Python of the venv where the contender imports,
from the repository root; prints one JSON line. Each call scores one query's candidate list, as a
RAG pipeline does.

    python -m benchmarks.contenders --contender flagreranker --model DIR --workload pairs.json

The decoder LLM rerankers' references (``mxbai-rerank``, ``flag-layerwise``, ``flag-lightweight``)
are in ``benchmarks/llm_contenders.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import sys
import time
from typing import Callable, Dict, List, Optional

from benchmarks.common import versions
from benchmarks.llm_contenders import (
    LLM_CONTENDERS,
    crossrank_flag,
    crossrank_options,
    layer_options,
    load_llm,
)

CONTENDERS = (
    "crossrank-torch",
    "crossrank-onnx",
    "crossrank-onnx-int8",
    "flagreranker",
    "sentence-transformers",
    "transformers-loop",
)
# Not in the default table: run with --contenders ...,crossrank-torch-bf16
EXTRA = (
    "crossrank-torch-bf16",
    "crossrank-torch-compile",
    "crossrank-torch-mkl",  # torch fp32 with torch's default linear layers (MKL on x86)
    "crossrank-torch-onednn",  # torch fp32 with oneDNN linear layers, on any CPU
    "crossrank-openvino",
    "crossrank-openvino-bf16",
    "crossrank-openvino-int8",
    "rerankers-t5",  # rerankers' T5Ranker, the reference for a monoT5 model (--model monot5)
    "pylate",  # PyLate's ColBERT + rank.rerank, the reference for a ColBERT model (--model colbert)
    *LLM_CONTENDERS,  # the references for --model mxbai, layerwise and lightweight
)
CONTENDER_PACKAGES = (
    "torch",
    "transformers",
    "FlagEmbedding",
    "sentence-transformers",
    "rerankers",
    "pylate",
    "mxbai-rerank",
    "onnxruntime",
    "openvino",
    "crossrank",
)
Scorer = Callable[[List[List[str]]], List[float]]


def load(
    name: str, model: str, batch_size: int, max_length: int, options: Optional[Dict] = None
) -> Scorer:
    """Load contender ``name`` and return a function scoring a list of [query, passage] pairs.

    ``options``: layer options (``benchmarks.llm_contenders``); with them ``crossrank-torch`` is
    crossrank's drop-in of the checkpoint's FlagEmbedding class, called as the reference is.
    """
    if name in LLM_CONTENDERS:
        return load_llm(name, model, batch_size, max_length, options or {})
    if options and name != "crossrank-torch":
        raise SystemExit(f"{name} takes no layer options ({', '.join(options)})")
    if options:
        return crossrank_flag(model, batch_size, max_length, options)
    if name.startswith("crossrank"):
        from crossrank import Reranker

        backend = name.split("-")[1]  # crossrank-<backend>[-<precision>]
        quantize = "int8" if name.endswith("int8") else None
        compile_options = {"compile": True} if name.endswith("compile") else {}
        if name.endswith(("-mkl", "-onednn")):  # before the model loads: read at load time
            os.environ["CROSSRANK_CPU_LINEAR"] = name.rsplit("-", 1)[1]
        reranker = Reranker(
            model,
            device="cpu",
            dtype="bfloat16" if name.endswith("bf16") else None,
            max_length=max_length,
            batch_size=batch_size,
            backend=backend,
            quantize=quantize,
            **compile_options,
            **crossrank_options(model),  # prompt_format="mxbai" for a Qwen2 decoder
        )
        return reranker.compute_score
    if name == "flagreranker":
        from FlagEmbedding import FlagReranker

        flag = FlagReranker(
            model, use_fp16=False, devices="cpu", batch_size=batch_size, max_length=max_length
        )
        return lambda pairs: flag.compute_score(pairs, batch_size=batch_size, max_length=max_length)
    if name == "sentence-transformers":
        import torch
        from sentence_transformers import CrossEncoder

        # Identity: raw logits, as FlagReranker returns (a 1-logit CrossEncoder applies a sigmoid).
        encoder = CrossEncoder(
            model, device="cpu", max_length=max_length, activation_fn=torch.nn.Identity()
        )
        return lambda pairs: encoder.predict(
            pairs, batch_size=batch_size, show_progress_bar=False
        ).tolist()
    if name == "transformers-loop":
        return transformers_loop(model, batch_size, max_length)
    if name == "rerankers-t5":
        import torch
        from rerankers.models.t5ranker import T5Ranker

        ranker = T5Ranker(
            model, device="cpu", dtype=torch.float32, batch_size=batch_size, verbose=0
        )
        return lambda pairs: t5ranker_log_odds(ranker, pairs, max_length)
    if name == "pylate":
        return pylate_rerank(model, batch_size)
    raise SystemExit(f"unknown contender {name!r}; one of {', '.join(CONTENDERS + EXTRA)}")


def transformers_loop(
    model_dir: str, batch_size: int, max_length: int, device: str = "cpu", dtype=None
) -> Scorer:
    """What a user writes by hand: batches in input order, padded, passage truncated."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model = model.to(device=device, dtype=dtype).eval()

    def score(pairs: List[List[str]]) -> List[float]:
        scores: List[float] = []
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            inputs = tokenizer(
                [q for q, _ in batch],
                [p for _, p in batch],
                padding=True,
                truncation="only_second",
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                scores.extend(model(**inputs.to(device)).logits[:, 0].float().tolist())
        return scores

    return score


def pylate_rerank(model_dir: str, batch_size: int) -> Scorer:
    """PyLate as its docs rerank: each query's list encoded (query once), ``rank.rerank``; the
    scores put back in input order. Its own query/document lengths apply (the checkpoint's)."""
    from pylate import models, rank

    model = models.ColBERT(model_dir, device="cpu")

    def score(pairs: List[List[str]]) -> List[float]:
        scores: List[float] = []
        for query, group in itertools.groupby(pairs, key=lambda pair: pair[0]):
            documents = [p for _, p in group]
            queries = model.encode([query], is_query=True, batch_size=batch_size)
            encoded = model.encode([documents], is_query=False, batch_size=batch_size)
            ids = [list(range(len(documents)))]
            ranked = rank.rerank(ids, queries_embeddings=queries, documents_embeddings=encoded)
            by_id = {hit["id"]: hit["score"] for hit in ranked[0]}
            scores.extend(by_id[i] for i in range(len(documents)))
        return scores

    return score


def t5ranker_log_odds(ranker, pairs: List[List[str]], max_length: int) -> List[float]:
    """T5Ranker's P(true) of each pair as log-odds (crossrank's raw score), a call per query.

    ``_get_scores`` is what its ``rank`` runs, with ``max_length`` passed (``rank`` keeps 512).
    """
    scores: List[float] = []
    for query, group in itertools.groupby(pairs, key=lambda pair: pair[0]):
        probabilities = ranker._get_scores(query, [p for _, p in group], max_length=max_length)
        scores.extend(math.log(p) - math.log1p(-p) for p in probabilities)
    return scores


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contender", required=True, choices=CONTENDERS + EXTRA)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workload", required=True, help="JSON: {warmup: pairs, calls: [pairs]}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--layer-options", help="JSON: cutoff_layers, compress_ratio/_layers")
    args = parser.parse_args(argv)
    options = layer_options(args.layer_options)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.workload, encoding="utf-8") as handle:
        workload = json.load(handle)
    started = time.perf_counter()
    score = load(args.contender, args.model, args.batch_size, args.max_length, options)
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mib()
    score(workload["warmup"])
    scores: List[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for pairs in workload["calls"]:
        scores.extend(float(s) for s in score(pairs))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads; less skewed by other load
    result = {
        "contender": args.contender,
        "pairs": len(scores),
        "seconds": seconds,
        "pairs_per_s": len(scores) / seconds,
        "cpu_seconds": cpu_seconds,
        "load_s": load_s,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_load_mib": rss_loaded,
        "threads": torch.get_num_threads(),
        "python": sys.executable,
        "versions": versions(CONTENDER_PACKAGES),
        "scores": scores,
    }
    if options and args.contender == "crossrank-torch":
        result["label"] = "crossrank, torch fp32, its FlagEmbedding drop-in (same layer options)"
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
