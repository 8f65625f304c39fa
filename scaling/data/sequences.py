"""Chronological per-user interaction sequences, the one format every dataset is turned into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ContextEvents:
    """Slowly changing contextual features (device, locale, ...) per user, already compressed.

    Section 2.1: each contextual time series keeps only the earliest entry of every run of equal
    values, and the survivors are merged into the main sequence at their timestamps. User ``u``
    owns rows ``offsets[u]:offsets[u+1]``, chronological. Tokens share one vocabulary
    ``1..num_tokens`` across all contextual features (0 is padding).
    """

    tokens: np.ndarray  # [C] int64 in 1..num_tokens
    timestamps: np.ndarray  # [C] int64, non-decreasing per user
    offsets: np.ndarray  # [U+1] int64
    num_tokens: int
    feature_names: tuple[str, ...] = ()  # e.g. ("device", "locale")
    token_feature: np.ndarray | None = None  # [num_tokens + 1] which feature each token belongs to


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
    # What the user did with each item (ranking data). action_tokens[e] is the action a_e as one
    # token of 1..num_action_tokens (e.g. a rating, or a multi-hot event bitmask + 1); labels[e, k]
    # says whether event task_names[k] happened (the ranking targets).
    action_tokens: np.ndarray | None = None  # [E] int64
    num_action_tokens: int = 0
    labels: np.ndarray | None = None  # [E, K] float32 in {0, 1}
    task_names: tuple[str, ...] = ()
    item_categories: np.ndarray | None = None  # [num_items + 1] int64 category of each item (0 = unknown)
    num_categories: int = 0
    contexts: ContextEvents | None = None
    # The true marginal P(task k) of each event, known only for synthetic data: the floor any model
    # can reach on any subset of events (scaling.metrics.oracle_ranking_metrics).
    oracle_probabilities: np.ndarray | None = None  # [E, K] float32, aligned with labels

    @property
    def has_actions(self) -> bool:
        return self.action_tokens is not None and self.labels is not None

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        """[U] number of interactions per user."""
        return np.diff(self.offsets)
