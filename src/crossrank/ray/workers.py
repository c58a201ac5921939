"""What Ray Data actors and Ray Serve replicas share: their options, checked in the driver, and
the one Reranker each process loads.

>>> check_model("BAAI/bge-reranker-base"), cpu_threads(num_gpus=0, num_cpus=2)
('BAAI/bge-reranker-base', 2)
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional


def check_model(model: Any) -> str:
    """``model`` as the string every worker loads (a hub id or a checkpoint directory)."""
    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a hub id or a checkpoint directory, got {model!r}")
    return model


def check_shares(**shares: Any) -> None:
    """Each named share of a resource (``num_gpus_per_actor=0.5``, ...) must be a number >= 0."""
    for name, value in shares.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def cpu_threads(num_gpus: float, num_cpus: float) -> Optional[int]:
    """Torch threads for a worker: as many as its CPUs on CPU, None (torch's choice) on a GPU."""
    return None if num_gpus else max(1, int(num_cpus))


def load_reranker(model: str, reranker_kwargs: Dict[str, Any], threads: Optional[int]):
    """In the worker: ``Reranker(model, **reranker_kwargs)``, with ``threads`` torch threads."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from crossrank import Reranker

    return Reranker(model, **reranker_kwargs)
