"""What the pipeline needs of a runtime: ``logits(batch)``, whatever computes it.

A backend (:mod:`crossrank.backends.registry`) builds one runtime per device when the reranker
is made; the pipeline only calls :meth:`Runtime.logits` and never asks which backend it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch


class Runtime(Protocol):
    """A built backend: computes the logits of a padded batch."""

    name: str
    dtype: torch.dtype
    model: object  # the torch model (on the meta device where another runtime holds the weights)

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor: ...


__all__ = ["Runtime"]
