"""Length-ordered, token-budget batching.

Sorting pairs by token length means each batch pads to a length close to its members', and a
budget of ``batch_size × longest length`` tokens lets batches of short pairs hold more of them
while the padded size of every batch stays below what the longest batch costs.
"""

from __future__ import annotations

from array import array
from typing import Dict, List, Optional, Sequence

import torch


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: Optional[int] = None,
    max_padding: Optional[float] = None,
) -> List[List[int]]:
    """Group item indices into batches, longest items first.

    Every batch is a list of indices into ``lengths``; items are ordered by length, longest first
    (ties keep input order), and a batch grows while ``len(batch) × its longest length`` stays within
    the token budget: ``batch_size × max(lengths)``, or ``max_tokens`` where given (a device's
    budget, :func:`crossrank.devices.max_batch_tokens`; an item longer than it still gets a batch).
    With ``max_padding`` (a fraction), a batch also closes before an item that would make more
    than that share of its tokens padding, so no batch computes more padding than that.

    >>> plan_batches([3, 10, 2, 10], batch_size=1)
    [[1], [3], [0, 2]]
    >>> plan_batches([3, 10, 2, 10], batch_size=1, max_tokens=30)
    [[1, 3, 0], [2]]
    >>> plan_batches([3, 10, 2, 10], batch_size=1, max_tokens=30, max_padding=0.05)
    [[1, 3], [0], [2]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_padding is not None and not 0 <= max_padding < 1:
        raise ValueError(f"max_padding must be in [0, 1), got {max_padding}")
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    budget = batch_size * max(lengths[order[0]], 1) if max_tokens is None else max_tokens
    batches: List[List[int]] = []
    current: List[int] = []
    real = 0  # tokens of the current batch's items
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        computed = (len(current) + 1) * max(longest, 1)
        if current and (
            computed > budget
            or (max_padding is not None and real + lengths[index] < (1 - max_padding) * computed)
        ):
            batches.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        batches.append(current)
    return batches


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """The share of the tokens a forward computes that are padding, for ``batches`` of ``lengths``.

    Each batch pads to its longest member, so it computes ``len(batch) × longest`` tokens.

    >>> round(padding_fraction([4, 2, 2], [[0, 1], [2]]), 3)  # 8 of 10 computed tokens are real
    0.2
    """
    computed = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
    real = sum(lengths[i] for batch in batches for i in batch)
    return 1.0 - real / computed if computed else 0.0


def restore_order(
    batches: Sequence[Sequence[int]], batch_scores: Sequence[Sequence[float]]
) -> List[float]:
    """Put scores computed batch by batch back into the items' input order."""
    total = sum(len(batch) for batch in batches)
    scores: List[float] = [0.0] * total
    for batch, values in zip(batches, batch_scores):
        if len(batch) != len(values):
            raise ValueError(f"a batch of {len(batch)} items got {len(values)} scores")
        for index, value in zip(batch, values):
            scores[index] = value
    return scores


def collate(
    features: Sequence[Dict[str, Sequence[int]]],
    pad_token_id: int,
    padding_side: str = "right",
) -> Dict[str, torch.Tensor]:
    """Pad a batch of encoded pairs to its longest member and stack it into tensors.

    Each feature holds ``input_ids`` and optionally ``token_type_ids`` (lists, or compact
    ``array.array`` rows, which are copied as whole buffers); the attention mask is built here.
    ``padding_side="left"`` suits decoder models that read the last position.
    """
    lengths = torch.tensor([len(f["input_ids"]) for f in features], dtype=torch.long)
    width = int(lengths.max())
    positions = torch.arange(width)
    if padding_side == "right":
        mask = positions < lengths[:, None]
    else:
        mask = positions >= (width - lengths)[:, None]
    # The kept positions, row by row, are the features' tokens one after another.
    ids = torch.full((len(features), width), pad_token_id, dtype=torch.long)
    ids.masked_scatter_(mask, _concatenated(features, "input_ids"))  # ids[mask] = … is ~100× slower
    batch = {"input_ids": ids, "attention_mask": mask.long()}
    if "token_type_ids" in features[0]:
        types = torch.zeros((len(features), width), dtype=torch.long)
        types.masked_scatter_(mask, _concatenated(features, "token_type_ids"))
        batch["token_type_ids"] = types
    return batch


# array typecodes of signed integers → the torch dtype of that item size
_SIGNED = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _concatenated(features: Sequence[Dict[str, Sequence[int]]], key: str) -> torch.Tensor:
    """``features[i][key]`` one after another as one int64 tensor.

    Compact arrays are joined buffer to buffer and read without a Python int per token
    (``torch.tensor`` on an array walks it item by item).
    """
    first = features[0][key]
    if isinstance(first, array) and first.typecode in "bhilq":
        flat = array(first.typecode)
        for feature in features:
            flat.extend(feature[key])  # same typecode: a memory copy; a list: item by item
        if len(flat):
            return torch.frombuffer(flat, dtype=_SIGNED[flat.itemsize]).long()
    return torch.tensor([t for f in features for t in f[key]], dtype=torch.long)
