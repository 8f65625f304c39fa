"""Small jagged batches with random items and increasing timestamps, shared by the encoder tests."""

from __future__ import annotations

import torch

from model.inputs import JaggedSequences


def sequences_of(
    lengths: list[int], num_items: int = 30, seed: int = 0, num_targets: list[int] | None = None
) -> JaggedSequences:
    generator = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    stamps = torch.cumsum(torch.randint(1, 10_000, (total,), generator=generator), 0)
    return JaggedSequences(
        item_ids=torch.randint(1, num_items + 1, (total,), generator=generator),
        timestamps=stamps,
        query_timestamps=stamps + 500,
        offsets=offsets,
        num_targets=torch.tensor(num_targets) if num_targets is not None else None,
    )
