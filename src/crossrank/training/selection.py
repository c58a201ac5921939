"""Which weights a ``crossrank train`` run keeps, and when its held-out evaluations stop it early.

Every held-out evaluation (step 0, every ``eval_every`` steps, the end) is offered to
:class:`Selection`. It remembers the best one by ``select_metric`` (the first of equals) and, with
``keep="best"``, a copy of that step's weights, which the run loads before saving. It counts the
evaluations since the last one that beat the best so far by more than ``early_stopping_min_delta``;
``early_stopping_patience`` of them stop the run. Its state travels in checkpoints, so a resumed run
keeps and stops exactly like one that never stopped.

>>> selection = Selection(config)                                # doctest: +SKIP
>>> stop = selection.offer({"step": 100, "bm25": 0.6, "model": 0.55, "fused@0.5": 0.66}, model)  # doctest: +SKIP
>>> selection.restore_best(model)  # the step whose weights are now in ``model``  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Dict, Optional

# select_metric -> the key of an evaluation (see crossrank.training.loop._evaluate)
METRIC_KEYS = {"model": "model", "fused": "fused@0.5"}


def _copy(model) -> Dict[str, object]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Selection:
    """The best held-out evaluation so far, its weights (``keep="best"``) and the patience count."""

    def __init__(self, config) -> None:
        self.key = METRIC_KEYS[config.select_metric]
        self.keep_best = config.keep == "best"
        self.patience: Optional[int] = config.early_stopping_patience
        self.min_delta = config.early_stopping_min_delta
        self.best: Optional[Dict[str, float]] = None  # the best evaluation so far
        self.weights: Optional[Dict[str, object]] = None  # its weights, with keep="best"
        self.waited = 0  # evaluations since the last improvement by more than min_delta

    @property
    def best_step(self) -> Optional[int]:
        return None if self.best is None else int(self.best["step"])

    def offer(self, evaluation: Dict[str, float], model) -> bool:
        """Record one held-out evaluation of ``model`` as it is now; True: early stopping stops."""
        value = evaluation[self.key]
        improved = self.best is None or value > self.best[self.key] + self.min_delta
        if self.best is None or value > self.best[self.key]:
            self.best = dict(evaluation)
            self.weights = _copy(model) if self.keep_best else None
        self.waited = 0 if improved else self.waited + 1
        return self.patience is not None and self.waited >= self.patience

    def restore_best(self, model, step: int) -> int:
        """Load the best evaluation's weights into ``model`` (``keep="best"``); the kept step.

        ``step`` is the step ``model`` is at: it is kept with ``keep="last"`` or when no held-out
        evaluation was made.
        """
        if not self.keep_best or self.best is None or self.best_step == step:
            return step
        model.load_state_dict(self.weights)
        return int(self.best_step)

    def state(self, step: int) -> dict:
        """For a checkpoint at ``step``; the best weights are left out when they are the model's."""
        weights = None if self.best_step == step else self.weights
        return {"best": self.best, "waited": self.waited, "weights": weights}

    def load(self, state: Optional[dict], model) -> None:
        """Continue from :meth:`state` (``model`` already holds the checkpoint's weights).

        A checkpoint from before best-checkpoint selection has no such state: the selection then
        starts at the resumed step.
        """
        if state is None:
            return
        self.best, self.waited = state["best"], state["waited"]
        self.weights = state["weights"]
        if self.keep_best and self.best is not None and self.weights is None:
            self.weights = _copy(model)  # saved without them: the best step is this step


__all__ = ["Selection", "METRIC_KEYS"]
