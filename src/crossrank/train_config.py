"""The settings of a ``crossrank train`` run (no torch import: the CLI builds its options from it).

>>> TrainConfig("all-MiniLM-L6-v2", "data/scifact", "runs/minilm-scifact", max_steps=100).check()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

LOSSES = ("listwise", "bce")
CLOCKS = ("wall", "cpu")


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

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        positive = ("negatives", "negatives_depth", "queries_per_step", "eval_top_n")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 16:
            raise ValueError(f"max_length must be >= 16, got {self.max_length}")
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.learning_rate <= 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("learning_rate must be > 0 and warmup_ratio in [0, 1)")
        if self.budget_clock not in CLOCKS:
            raise ValueError(f"budget_clock must be one of {CLOCKS}, got {self.budget_clock!r}")
        if isinstance(self.save_every, bool) or not isinstance(self.save_every, int):
            raise ValueError(f"save_every must be an int >= 0, got {self.save_every!r}")
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0, got {self.save_every}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            raise ValueError(f"time_budget_minutes must be > 0, got {self.time_budget_minutes}")


__all__ = ["TrainConfig", "LOSSES", "CLOCKS"]
