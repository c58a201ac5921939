"""Training and adapting rerankers: the loop, its config, run state, checkpoint selection,
distillation from a teacher and pseudo queries for corpora without labels.

>>> from crossrank.training import TrainConfig, train                 # doctest: +SKIP
>>> train(TrainConfig(data="data/scifact", model="base", output="runs/x"))  # doctest: +SKIP

Names are imported on first use: ``TrainConfig`` needs no torch, ``train`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TrainConfig": ".config",
        "TrainResult": ".loop",
        "train": ".loop",
        "make_pseudo_dataset": ".pseudo_queries",
        "adapt": ".adaptation",
        "AdaptResult": ".adaptation",
    },
    globals(),
)

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .loop import TrainResult, train
    from .adaptation import AdaptResult, adapt
    from .pseudo_queries import make_pseudo_dataset

__all__ = ["AdaptResult", "TrainConfig", "TrainResult", "adapt", "train", "make_pseudo_dataset"]
