"""The settings of a ``crossrank train`` run (no torch import: the CLI builds its options from it).

>>> TrainConfig("all-MiniLM-L6-v2", "data/scifact", "runs/minilm-scifact", max_steps=100).check()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ArgumentError

LOSSES = ("listwise", "bce")
CLOCKS = ("wall", "cpu")
DISTILL_LOSSES = ("kl", "margin-mse")
KEEPS = ("best", "last")
# the held-out nDCG@10 that picks the kept weights: the reranker alone, or fused 0.5 with BM25
SELECT_METRICS = ("model", "fused")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``training_log.json`` beside the weights."""

    model: str  # base: any HF encoder directory/hub id, or an existing cross-encoder
    data_dir: str  # BEIR format: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv
    output_dir: str
    split: str = "train"
    loss: str = "listwise"
    negatives: int = 7  # per positive
    negatives_depth: int = 50  # negatives are drawn from the BM25 top-``negatives_depth``
    max_length: int = 128
    queries_per_step: int = 8
    epochs: float = 1.0
    max_steps: Optional[int] = None  # overrides epochs
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    eval_queries: int = 50  # held out from training, scored during it
    # Take the held-out queries from this split (e.g. "dev") instead of carving them out of
    # ``split``: every training query then trains.
    eval_split: Optional[str] = None
    eval_every: int = 100  # steps; 0 = only before and after training
    eval_top_n: int = 20
    time_budget_minutes: Optional[float] = None  # stop (LR decayed by then) at this budget
    # "wall": wall-clock time; "cpu": this process's CPU time / torch threads, i.e. the time the run
    # would take on a machine it has to itself (fair on a shared machine)
    budget_clock: str = "wall"
    show_progress: bool = True
    save_every: int = 0  # steps between checkpoints in output_dir; 0 = none
    resume: bool = False  # continue from output_dir's last checkpoint (same data order, schedule)
    overwrite: bool = False  # delete whatever output_dir holds first
    # Distillation: any reranker crossrank loads; its raw logits on each step's pairs are targets.
    teacher: Optional[str] = None
    distill_loss: str = "kl"  # listwise KL between softmaxes, or MSE of positive-negative margins
    distill_weight: float = 1.0  # loss = (1 - w) * label loss + w * distillation loss
    distill_temperature: float = 1.0  # kl only: both softmaxes at this temperature (loss x T^2)
    # Which weights are saved: those of the best held-out evaluation by select_metric, or the last.
    keep: str = "best"
    select_metric: str = "model"
    early_stopping_patience: Optional[int] = None  # stop after N evaluations without improvement
    early_stopping_min_delta: float = 0.0  # an improvement must exceed this
    # Where the student trains and is evaluated: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda[:N]"
    # or "mps". Always float32 weights; the saved checkpoint is the same whatever the device.
    device: str = "auto"
    # Freeze the embeddings and the lowest N transformer layers (0: train everything). The backward
    # pass then stops at layer N, so a step costs less: more steps fit a time budget.
    freeze_layers: int = 0
    # Set every dropout of the model to this probability while training (None: the model's own,
    # 0.1 for BERT-likes). 0 turns dropout off: on a CPU a step then costs 20-30% less (no random
    # masks, and attention takes the fused SDPA kernel), so more steps fit a time budget. The saved
    # checkpoint's config keeps the model's own values; dropout never acts at inference.
    dropout: Optional[float] = None
    # Mixed precision: forward and backward under bfloat16 autocast, float32 master weights,
    # optimizer and saved checkpoint. On a CPU with bfloat16 instructions (AVX512-BF16, AMX) a step
    # costs ~0.5x float32, so more steps fit a time budget; elsewhere it is slower (warned).
    bf16: bool = False

    def check(self) -> None:
        """Raise :class:`~crossrank.errors.ArgumentError` (a ValueError) naming a bad setting."""
        for name, allowed in (
            ("loss", LOSSES),
            ("budget_clock", CLOCKS),
            ("distill_loss", DISTILL_LOSSES),
            ("keep", KEEPS),
            ("select_metric", SELECT_METRICS),
        ):
            if getattr(self, name) not in allowed:
                raise ArgumentError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.eval_split is not None and self.eval_split == self.split:
            raise ArgumentError(
                f"eval_split={self.eval_split!r} is the training split: held-out queries must come "
                "from another split (e.g. 'dev'), or leave eval_split unset to hold some out of it"
            )
        positive = ("negatives", "negatives_depth", "queries_per_step", "eval_top_n")
        for name in positive:
            if getattr(self, name) < 1:
                raise ArgumentError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 16:
            raise ArgumentError(f"max_length must be >= 16, got {self.max_length}")
        if self.epochs <= 0 and not self.max_steps:
            raise ArgumentError(f"epochs must be > 0, got {self.epochs}")
        if self.learning_rate <= 0 or not 0 <= self.warmup_ratio < 1:
            raise ArgumentError("learning_rate must be > 0 and warmup_ratio in [0, 1)")
        if isinstance(self.save_every, bool) or not isinstance(self.save_every, int):
            raise ArgumentError(f"save_every must be an int >= 0, got {self.save_every!r}")
        if self.save_every < 0:
            raise ArgumentError(f"save_every must be >= 0, got {self.save_every}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ArgumentError(f"time_budget_minutes must be > 0, got {self.time_budget_minutes}")
        frozen = self.freeze_layers
        if isinstance(frozen, bool) or not isinstance(frozen, int) or frozen < 0:
            raise ArgumentError(f"freeze_layers must be an int >= 0, got {frozen!r}")
        drop = self.dropout
        if drop is not None and (
            isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop < 1
        ):
            raise ArgumentError(f"dropout must be a probability in [0, 1) or None, got {drop!r}")
        if not isinstance(self.bf16, bool):
            raise ArgumentError(f"bf16 must be True or False, got {self.bf16!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ArgumentError(
                f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )
        self._check_distillation()
        self._check_selection()

    def _check_distillation(self) -> None:
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ArgumentError(f"teacher must be a model path or hub id, got {self.teacher!r}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ArgumentError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ArgumentError(f"distill_temperature must be > 0, got {self.distill_temperature}")

    def _check_selection(self) -> None:
        patience = self.early_stopping_patience
        if patience is not None:
            if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
                raise ArgumentError(
                    f"early_stopping_patience must be an int >= 1 or None, got {patience!r}"
                )
            if not self.eval_every or not self.eval_queries:
                raise ArgumentError(
                    "early_stopping_patience needs held-out evaluations during training: "
                    f"eval_every and eval_queries must be >= 1 (got {self.eval_every}, "
                    f"{self.eval_queries})"
                )
        if not self.early_stopping_min_delta >= 0:
            raise ArgumentError(
                f"early_stopping_min_delta must be >= 0, got {self.early_stopping_min_delta}"
            )


__all__ = ["TrainConfig", "LOSSES", "CLOCKS", "DISTILL_LOSSES", "KEEPS", "SELECT_METRICS"]
