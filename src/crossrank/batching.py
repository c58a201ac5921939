"""Length-ordered, token-budget batching.

Sorting pairs by token length means each batch pads to a length close to its members', and a
budget of ``batch_size × longest length`` tokens lets batches of short pairs hold more of them
while the padded size of every batch stays below what the longest batch costs.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch


def plan_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Group item indices into batches, longest items first.

    Every batch is a list of indices into ``lengths``; items are ordered by length, longest first
    (ties keep input order), and a batch grows while ``len(batch) × its longest length`` stays within
    ``batch_size × max(lengths)``.

    >>> plan_batches([3, 10, 2, 10], batch_size=1)
    [[1], [3], [0, 2]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    budget = batch_size * max(lengths[order[0]], 1)
    batches: List[List[int]] = []
    current: List[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * max(longest, 1) > budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


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
    features: Sequence[Dict[str, List[int]]],
    pad_token_id: int,
    padding_side: str = "right",
) -> Dict[str, torch.Tensor]:
    """Pad a batch of encoded pairs to its longest member and stack it into tensors.

    Each feature holds ``input_ids`` and optionally ``token_type_ids``; the attention mask is built
    here. ``padding_side="left"`` suits decoder models that read the last position.
    """
    width = max(len(f["input_ids"]) for f in features)
    with_types = "token_type_ids" in features[0]
    ids = torch.full((len(features), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    types = torch.zeros((len(features), width), dtype=torch.long) if with_types else None
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        span = slice(0, n) if padding_side == "right" else slice(width - n, width)
        ids[row, span] = torch.tensor(feature["input_ids"], dtype=torch.long)
        mask[row, span] = 1
        if types is not None:
            types[row, span] = torch.tensor(feature["token_type_ids"], dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    return batch
