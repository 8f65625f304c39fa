"""M-FALCON's KV cache as the attention operators read it: one layer's keys and values of B histories."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class CachedKeyValues:
    """One layer's keys and values of B histories (jagged), computed once and reused for every candidate."""

    k: Tensor  # [Tn, H, Dqk]
    v: Tensor  # [Tn, H, Dv]
    offsets: Tensor  # [B+1] int64 history offsets
    timestamps: Tensor | None = None  # [Tn] int64 seconds of each history token; required with time_weights
