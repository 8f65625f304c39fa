"""Chronological per-user interaction sequences, the one format every dataset is turned into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SequenceDataset:
    """All users' histories back to back (CSR layout), each in chronological order.

    User ``u`` owns rows ``offsets[u]:offsets[u+1]``. Item ids are dense in ``1..num_items``
    (0 is reserved for padding); equal timestamps keep the source's order (a stable sort).
    """

    item_ids: np.ndarray  # [E] int64 in 1..num_items
    timestamps: np.ndarray  # [E] int64 seconds (or a synthetic clock), non-decreasing per user
    offsets: np.ndarray  # [U+1] int64, offsets[0] == 0, offsets[-1] == E
    num_items: int
    ratings: np.ndarray | None = None  # [E] float32 explicit rating / action value, if the source has one
    fingerprint: dict[str, Any] = field(default_factory=dict)  # source checksums, parameters and counts

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        """[U] number of interactions per user."""
        return np.diff(self.offsets)
