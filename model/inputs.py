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

    item_ids: Tensor  # [T] int64 item on each token (0 = none: an action or contextual token)
    timestamps: Tensor  # [T] int64 seconds, when each token's event happened
    query_timestamps: Tensor  # [T] int64 seconds, when each token's prediction is requested
    offsets: Tensor  # [B+1] int64
    num_targets: Tensor | None = None  # [B] trailing candidate tokens per sequence (ranking, M-FALCON)
    action_ids: Tensor | None = None  # [T] int64 action token on each token (0 = none), interleaved tasks
    context_ids: Tensor | None = None  # [T] int64 contextual-feature token (0 = none)

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


@dataclass(frozen=True)
class Vocabulary:
    """Sizes a model's embeddings and heads need from the data."""

    num_items: int
    max_seq_len: int  # tokens per sequence, the N of rab^{p,t} and of the 1/N in Eq. 2
    num_action_tokens: int = 0
    num_context_tokens: int = 0
    task_names: tuple[str, ...] = ()

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)


@dataclass(frozen=True)
class ImpressionFeatures:
    """What a DLRM sees for N (user, candidate item) impressions, all computed causally.

    Every feature of impression n uses only events strictly before it (the user's earlier
    events; global counts over earlier timestamps): the target's own action and anything later
    never leak in. GR models get none of this; they read the raw sequence.
    """

    target_item_ids: Tensor  # [N] int64 candidate item
    target_categories: Tensor  # [N] int64 candidate's category (0 when the dataset has none)
    dense: Tensor  # [N, F] float32 hand-crafted numeric features (rates, counts, recency, popularity)
    sparse: Tensor  # [N, S] int64 categorical features, column s drawn from its own vocabulary
    history_item_ids: Tensor  # [N, K] int64 most recent K earlier items, right-aligned, 0 = padding
    history_actions: Tensor  # [N, K] int64 action token of each history item, 0 = padding

    @property
    def num_impressions(self) -> int:
        return self.target_item_ids.numel()

    def to(self, device: torch.device | str) -> "ImpressionFeatures":
        return ImpressionFeatures(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))
