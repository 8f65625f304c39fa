"""The tensors a sequential model consumes: a jagged batch of token sequences and their times."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class JaggedSequences:
    """B token sequences stored back to back (values + offsets); no padding to a global maximum.

    ``query_timestamps[i]`` is when the prediction made at token i is requested: the time of
    the event that follows it (for the last token of an evaluation sequence, the held-out
    target's time, which a serving system knows at request time).
    """

    item_ids: Tensor  # [T] int64 token ids, 0 never appears
    timestamps: Tensor  # [T] int64 seconds, when each token's event happened
    query_timestamps: Tensor  # [T] int64 seconds, when each token's prediction is requested
    offsets: Tensor  # [B+1] int64
    num_targets: Tensor | None = None  # [B] trailing candidate tokens per sequence (ranking, M-FALCON)

    @property
    def num_sequences(self) -> int:
        return self.offsets.numel() - 1

    @property
    def num_tokens(self) -> int:
        return self.item_ids.numel()

    def to(self, device: torch.device | str) -> "JaggedSequences":
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=True)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)
