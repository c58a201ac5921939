"""Fine-tune a Hugging Face encoder into a 1-logit cross-encoder on BEIR-format train qrels.

Positives come from the qrels; negatives are BM25 hard negatives (positives excluded). Each step
takes ``queries_per_step`` (query, positive) examples with ``negatives`` negatives each and
minimizes a listwise softmax cross-entropy (positive first among 1 + k) or binary cross-entropy,
optionally mixed with distillation from a teacher reranker (:mod:`crossrank.training.distillation`). AdamW,
linear warm-up and decay, seeded. The weights of the best held-out evaluation are kept (or the last;
:mod:`crossrank.training.selection`, also early stopping). The result is a standard
``*ForSequenceClassification`` checkpoint (``save_pretrained``) that crossrank,
sentence-transformers and FlagEmbedding load. Needs the ``eval`` extra (BM25 for the negatives and
the held-out evaluation).

>>> from crossrank.training.loop import TrainConfig, train
>>> result = train(TrainConfig("all-MiniLM-L6-v2", "data/scifact", "runs/minilm-scifact"))  # doctest: +SKIP
>>> result.evals[-1]                                                                        # doctest: +SKIP
{'step': 400, 'bm25': 0.66, 'model': 0.58, 'fused@0.5': 0.70}
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from ..backends.torch import TorchBackend
from ..batching import collate
from ..errors import ArgumentError
from ..evaluation.beir import load_split
from ..evaluation.reranking import BM25, BeirData, compute_metrics, fuse, load_beir
from ..families.cross_encoder import CrossEncoderFamily, PairEncoder
from ..loading import quiet_loading
from ..pipeline import Pipeline, Request
from . import state as train_state
from .config import TrainConfig
from .layers import check_freeze, freeze, set_dropout
from .selection import Selection


@dataclass
class TrainResult:
    """What a run did: steps, per-step losses, held-out evaluations, and the trained model."""

    output_dir: str
    steps: int
    seconds: float  # wall clock
    cpu_seconds: float  # process CPU time / torch threads
    stopped_by: str  # "schedule", "time_budget" or "early_stopping"
    losses: List[float]
    evals: List[Dict[str, float]]
    model: object = field(default=None, repr=False)
    tokenizer: object = field(default=None, repr=False)
    resumed_from: int = 0  # the checkpoint's step when the run was resumed, else 0
    best_step: Optional[int] = None  # the best held-out evaluation's step (None: no held-out)
    best: Optional[Dict[str, float]] = None  # that evaluation
    kept_step: int = 0  # the step whose weights were saved (best_step with keep="best")


class _Examples:
    """(query, positive) examples with BM25 hard negatives, served in seeded shuffled epochs."""

    def __init__(self, data: BeirData, query_ids: List[str], bm25_run, config: TrainConfig):
        self.data, self.config = data, config
        self.rng = random.Random(config.seed)
        self.pairs = [(q, d) for q in query_ids for d, r in data.qrels[q].items() if r > 0]
        self.pool = {q: [d for d in bm25_run[q] if data.qrels[q].get(d, 0) <= 0] for q in query_ids}
        self.doc_ids = list(data.corpus)
        self.order: List[int] = []
        spare = len(self.doc_ids) - max((len(data.qrels[q]) for q in query_ids), default=0)
        if spare < config.negatives:
            raise ValueError(
                f"negatives={config.negatives} but the corpus has only {spare} non-relevant documents"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self) -> List[Tuple[str, List[str]]]:
        """``queries_per_step`` groups: (query id, [positive, negative, ...])."""
        groups = []
        for _ in range(self.config.queries_per_step):
            if not self.order:
                self.order = list(range(len(self.pairs)))
                self.rng.shuffle(self.order)
            query_id, positive = self.pairs[self.order.pop()]
            groups.append((query_id, [positive] + self._negatives(query_id)))
        return groups

    def _negatives(self, query_id: str) -> List[str]:
        pool, k = self.pool[query_id], self.config.negatives
        chosen = self.rng.sample(pool, min(k, len(pool)))
        while len(chosen) < k:  # few BM25 hits: top up with random non-relevant documents
            doc = self.rng.choice(self.doc_ids)
            if doc not in chosen and self.data.qrels[query_id].get(doc, 0) <= 0:
                chosen.append(doc)
        return chosen


def _load(config: TrainConfig):
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is the point here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            config.model, num_labels=1, ignore_mismatched_sizes=True
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    return tokenizer, model


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _forward(model, encoder: PairEncoder, pad_id: int, pairs) -> torch.Tensor:
    features = encoder.encode([q for q, _ in pairs], [p for _, p in pairs])
    device = _device(model)
    inputs = {k: v.to(device, non_blocking=True) for k, v in collate(features, pad_id).items()}
    return model(**inputs).logits[:, 0]


def _score(model, encoder, pad_id, pairs, batch_size: int = 64) -> List[float]:
    """Raw scores through the core's pipeline: what ``Reranker`` gives the saved checkpoint."""
    family = CrossEncoderFamily(encoder.tokenizer, model.config, "training")
    backend = TorchBackend(model, family.forward, _device(model), torch.float32)
    request = Request(batch_size=batch_size, max_length=encoder.max_length)
    return Pipeline(family, backend).score(pairs, request)


def _evaluate(
    model, encoder, pad_id, data: BeirData, run, step: int, bf16: bool = False
) -> Dict[str, float]:
    model.eval()
    # All held-out queries in one call: their pairs share length-sorted batches.
    pairs = [(data.queries[q], data.doc_text(d)) for q, docs in run.items() for d in docs]
    with torch.autocast(_device(model).type, dtype=torch.bfloat16, enabled=bf16):
        scores = _score(model, encoder, pad_id, pairs)
    scored, start = {}, 0
    for query_id, docs in run.items():
        scored[query_id] = dict(zip(docs, scores[start : start + len(docs)]))
        start += len(docs)
    model.train()
    qrels = {q: data.qrels[q] for q in run}
    ndcg = {
        name: compute_metrics(qrels, r, ("nDCG@10",))["nDCG@10"]
        for name, r in (("bm25", run), ("model", scored), ("fused@0.5", fuse(run, scored, 0.5)))
    }
    return {"step": step, **{k: round(v, 4) for k, v in ndcg.items()}}


def _check_bf16(config: TrainConfig, device: torch.device) -> None:
    if not config.bf16:
        return
    from ..devices import cpu_has_native_bf16
    from ..errors import warn_once

    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ArgumentError(
            f"bf16=True: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
            "train without --bf16"
        )
    if device.type == "cpu" and not cpu_has_native_bf16():
        warn_once(
            "train-bf16-slow-cpu",
            "bf16=True on a CPU without bfloat16 instructions (AVX512-BF16, AMX): steps are "
            "emulated and slower than float32; train without --bf16 on this machine.",
        )


def _label_loss(logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "listwise":
        target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        return torch.nn.functional.cross_entropy(logits, target)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def _lr_factor(progress: float, warmup: float) -> float:
    if progress < warmup:
        return progress / warmup
    return max(0.0, (1.0 - progress) / (1.0 - warmup))


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.data_dir`` and save it to ``config.output_dir``.

    Reproducible for a given seed unless ``time_budget_minutes`` stops the run (then the learning
    rate follows the larger of step and wall-clock progress, and the stop point depends on speed).
    With ``save_every`` it checkpoints every that many steps; ``resume`` continues from the last
    checkpoint with the same example order, random state and schedule, so a run killed and resumed
    gives the losses and weights of one that never stopped. A non-empty ``output_dir`` that is not
    a crossrank run is refused unless ``overwrite`` (see :mod:`crossrank.training.state`).
    """
    config.check()
    from ..devices import resolve_device

    device = resolve_device(config.device)  # a bad or absent device fails before any work
    _check_bf16(config, device)
    teacher = None
    from .distillation import BM25_TEACHER, BM25Teacher, Teacher

    if config.teacher and config.teacher != BM25_TEACHER:
        teacher = Teacher(config)  # loaded first: a bad --teacher leaves --output as it is
    if config.freeze_layers:  # too many layers is refused before --output is touched
        check_freeze(config.model, config.freeze_layers)
    resume = train_state.prepare_output(config)
    from transformers import set_seed

    set_seed(config.seed)
    data = load_beir(config.data_dir, config.split)
    query_ids = list(data.qrels)
    random.Random(config.seed).shuffle(query_ids)
    if config.eval_split:  # held-out queries from another split; all of this one trains
        eval_data = load_split(config.data_dir, config.eval_split, data)
        candidates = [q for q in eval_data.qrels if q not in data.qrels]
        random.Random(config.seed).shuffle(candidates)
        held_out, train_ids = candidates[: config.eval_queries], query_ids
    else:
        eval_data = data
        held_out = query_ids[: min(config.eval_queries, len(query_ids) // 5)]
        train_ids = query_ids[len(held_out) :]
    bm25 = BM25(data)
    if config.teacher == BM25_TEACHER:
        teacher = BM25Teacher(config, bm25)
    depth = config.negatives_depth + max(len(r) for r in data.qrels.values())
    examples = _Examples(
        data, train_ids, bm25.search({q: data.queries[q] for q in train_ids}, depth), config
    )
    eval_run = bm25.search({q: eval_data.queries[q] for q in held_out}, config.eval_top_n)

    with quiet_loading(config.show_progress):
        tokenizer, model = _load(config)
    freeze(model, config.freeze_layers)
    set_dropout(model, config.dropout)
    model.to(device)
    encoder = PairEncoder(tokenizer, config.max_length)
    pad_id = tokenizer.pad_token_id or 0
    total = config.max_steps or max(
        1, math.ceil(config.epochs * len(examples) / config.queries_per_step)
    )
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [
        {
            "params": [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and not n.endswith(no_decay)
            ],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [
                p for n, p in model.named_parameters() if p.requires_grad and n.endswith(no_decay)
            ],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    budget = None if config.time_budget_minutes is None else config.time_budget_minutes * 60.0

    threads = torch.get_num_threads()

    def clock() -> float:
        if config.budget_clock == "cpu":
            return time.process_time() / threads
        return time.perf_counter()

    start, cpu_start, stopped_by, step = time.perf_counter(), time.process_time(), "schedule", 0
    budget_start = clock()
    selection = Selection(config)
    evaluate = functools.partial(
        _evaluate, model, encoder, pad_id, eval_data, eval_run, bf16=config.bf16
    )
    if resume is None:
        evals = [evaluate(0)] if held_out else []
        if evals:
            selection.offer(evals[0], model)
        losses: List[float] = []
        spent = (0.0, 0.0)
    else:
        step, losses, evals, spent = train_state.restore(resume, model, optimizer, examples)
        selection.load(resume.get("selection"), model)
        if teacher is not None:
            teacher.load(resume.get("teacher_scores", []))
        budget_start -= resume["budget_used"]
    resumed_from = step
    model.train()
    bar = tqdm(
        total=total, initial=step, desc="Training", unit="step", disable=not config.show_progress
    )
    while step < total:
        elapsed = clock() - budget_start
        progress = max(step / total, elapsed / budget if budget else 0.0)
        if progress >= 1.0:
            stopped_by = "time_budget"
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(progress, config.warmup_ratio)
        groups = examples.batch()
        pairs = [(data.queries[q], data.doc_text(d)) for q, docs in groups for d in docs]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            logits = _forward(model, encoder, pad_id, pairs)
        logits = logits.float().view(len(groups), -1)  # the losses in float32
        weight = config.distill_weight if teacher is not None else 0.0
        loss = _label_loss(logits, config.loss) * (1.0 - weight) if weight < 1.0 else 0.0
        if teacher is not None and weight > 0.0:
            loss = loss + weight * teacher.loss(logits, groups, data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        postfix = {"loss": f"{sum(losses[-20:]) / len(losses[-20:]):.3f}"}
        if selection.best is not None:
            postfix["best_step"] = selection.best_step
        bar.set_postfix(postfix)
        if held_out and config.eval_every and step % config.eval_every == 0 and step < total:
            evals.append(evaluate(step))
            stop = selection.offer(evals[-1], model)
            if config.show_progress:  # progress, like the bar: not on stdout when it is off
                bar.write(
                    f"step {step}: held-out nDCG@10 {evals[-1]} (best: step {selection.best_step})"
                )
            if stop:
                stopped_by = "early_stopping"
                break
        if config.save_every and step % config.save_every == 0 and step < total:
            times = (
                spent[0] + time.perf_counter() - start,
                spent[1] + (time.process_time() - cpu_start) / threads,
            )
            state = train_state.snapshot(model, optimizer, examples, losses, evals, times)
            state.update(step=step, config=asdict(config), budget_used=clock() - budget_start)
            state["selection"] = selection.state(step)
            if teacher is not None:
                state["teacher_scores"] = teacher.state()
            train_state.save_checkpoint(config, step, state)
    bar.close()
    seconds = spent[0] + time.perf_counter() - start
    cpu_seconds = spent[1] + (time.process_time() - cpu_start) / threads
    if held_out and (not evals or evals[-1]["step"] != step):
        evals.append(evaluate(step))
        selection.offer(evals[-1], model)
    kept_step = selection.restore_best(model, step)
    model.eval()
    os.makedirs(config.output_dir, exist_ok=True)
    with quiet_loading(config.show_progress):  # its "Writing model shards" bar
        model.save_pretrained(config.output_dir)
        tokenizer.save_pretrained(config.output_dir)
    train_state.readable_modes(Path(config.output_dir))
    result = TrainResult(
        config.output_dir, step, seconds, cpu_seconds, stopped_by, losses, evals, model, tokenizer
    )
    result.resumed_from, result.kept_step = resumed_from, kept_step
    result.best_step, result.best = selection.best_step, selection.best
    log = {
        "config": asdict(config),
        "held_out_queries": held_out,
        "steps": step,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "torch_threads": threads,
        "device": str(device),
        "stopped_by": stopped_by,
        "losses": [round(v, 5) for v in losses],
        "evals": evals,
        "best_step": selection.best_step,
        "best": selection.best,
        "kept_step": kept_step,
    }
    if resumed_from:
        log["resumed_from"] = resumed_from
    with open(os.path.join(config.output_dir, "training_log.json"), "w", encoding="utf-8") as f:
        json.dump(log, f, indent=1)
    train_state.remove_checkpoints(
        Path(config.output_dir)
    )  # the run is complete: its model is saved
    return result
