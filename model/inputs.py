"""The tensors a sequential model consumes: a jagged batch of token sequences and their times."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

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

    # the per-token fields ([T]); offsets and num_targets are per sequence
    TOKENWISE: ClassVar[tuple[str, ...]] = ("item_ids", "timestamps", "query_timestamps", "action_ids", "context_ids")

    def with_tokens(self, tokens: Tensor | slice, offsets: Tensor, num_targets: Tensor | None = None) -> "JaggedSequences":
        """The sequences holding only ``tokens`` (an index, mask or slice of the [T] rows), cut by ``offsets``."""
        tokenwise = {name: getattr(self, name)[tokens] for name in self.TOKENWISE if getattr(self, name) is not None}
        return replace(self, offsets=offsets, num_targets=num_targets, **tokenwise)

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


@dataclass(frozen=True)
class FeatureSpec:
    """The dimensions a DLRM-family ranking model is built for: what the feature pipeline emits.

    ``scaling.data.features.feature_spec(dataset, history_len)`` computes it from a dataset; a
    model built for one spec accepts :class:`ImpressionFeatures` whose dense width, sparse
    columns and id ranges match it (any batch size N and any history length K).
    """

    num_items: int  # item ids 1..num_items (0 = padding)
    num_categories: int  # category ids 1..num_categories (0 = unknown)
    num_dense: int  # F, columns of ImpressionFeatures.dense
    sparse_vocab_sizes: tuple[int, ...]  # rows of sparse column s's table, padding row 0 included
    num_action_tokens: int  # action tokens 1..num_action_tokens in history_actions (0 = padding)
    num_tasks: int  # T, logits per impression
    history_len: int  # K, history items per impression the pipeline emits
    dense_names: tuple[str, ...] = ()  # name of each dense column, for reports
    task_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("num_items", "num_tasks", "num_action_tokens", "history_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureSpec.{name} must be >= 1; got {getattr(self, name)}")
        for name in ("num_categories", "num_dense"):
            if getattr(self, name) < 0:
                raise ValueError(f"FeatureSpec.{name} must be >= 0; got {getattr(self, name)}")
        if any(size < 2 for size in self.sparse_vocab_sizes):
            raise ValueError(f"every sparse vocabulary needs padding plus one value (size >= 2); got {self.sparse_vocab_sizes}")
        if self.dense_names and len(self.dense_names) != self.num_dense:
            raise ValueError(f"{len(self.dense_names)} dense_names for num_dense={self.num_dense}; give one name per column")
        if self.task_names and len(self.task_names) != self.num_tasks:
            raise ValueError(f"{len(self.task_names)} task_names for num_tasks={self.num_tasks}; give one name per task")

    @property
    def num_sparse(self) -> int:
        return len(self.sparse_vocab_sizes)
