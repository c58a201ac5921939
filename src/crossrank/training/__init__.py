"""Training and adapting rerankers: the loop, its config, run state, checkpoint selection,
distillation from a teacher, pseudo queries for corpora without labels, and ``adapt``, which
chains the last two into one call (``crossrank adapt``).

>>> from crossrank.training import TrainConfig, adapt, train                 # doctest: +SKIP
>>> train(TrainConfig(data="data/scifact", model="base", output="runs/x"))  # doctest: +SKIP
>>> adapt("data/my-corpus", "all-MiniLM-L6-v2", "runs/my-corpus")            # doctest: +SKIP

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
    from .adaptation import AdaptResult, adapt
    from .config import TrainConfig
    from .loop import TrainResult, train
    from .pseudo_queries import make_pseudo_dataset

__all__ = ["AdaptResult", "TrainConfig", "TrainResult", "adapt", "train", "make_pseudo_dataset"]
