"""Leave-one-out split and jagged batches for next-item retrieval.

Per user (chronological): the last item is the test target, the second-to-last the
validation target, the rest is training data. Training sequences are the most recent
``max_seq_len + 1`` training items, every position predicting the next one. A validation
query reads the training items; a test query reads the training items plus the validation
item. Batches are jagged (values + offsets): each sequence keeps its own length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from model.inputs import JaggedSequences
from scaling.data.sequences import SequenceDataset

EvalSplit = Literal["valid", "test"]


@dataclass(frozen=True)
class TrainingBatch:
    sequences: JaggedSequences
    target_ids: Tensor  # [T] the item that follows each input token

    def to(self, device: torch.device | str) -> "TrainingBatch":
        return TrainingBatch(self.sequences.to(device), self.target_ids.to(device))


@dataclass(frozen=True)
class EvaluationBatch:
    sequences: JaggedSequences
    target_ids: Tensor  # [B] held-out item per user
    history_ids: Tensor  # [H] every item each user interacted with before the target (to exclude)
    history_offsets: Tensor  # [B+1]

    def to(self, device: torch.device | str) -> "EvaluationBatch":
        return EvaluationBatch(
            self.sequences.to(device), self.target_ids.to(device), self.history_ids.to(device), self.history_offsets.to(device)
        )


def concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices covering [starts[i], ends[i]) for every i, and the [B+1] offsets of each range."""
    lengths = np.maximum(ends - starts, 0).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    indices = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - starts, lengths)
    return indices, offsets


class LeaveOneOutSplit:
    """Index arithmetic of the leave-one-out split over a :class:`SequenceDataset`."""

    def __init__(self, dataset: SequenceDataset, max_seq_len: int) -> None:
        if dataset.num_users == 0:
            raise ValueError("the dataset has no users")
        if int(dataset.lengths().min()) < 3:
            raise ValueError("leave-one-out needs at least 3 interactions per user; filter users first")
        self.dataset = dataset
        self.max_seq_len = max_seq_len
        self.user_start = dataset.offsets[:-1]
        self.user_end = dataset.offsets[1:]
        self.train_end = self.user_end - 2  # exclusive end of each user's training items
        # Users with at least two training items contribute at least one (input, next item) pair.
        self.training_users = np.flatnonzero(self.train_end - self.user_start >= 2)

    @property
    def num_users(self) -> int:
        return self.dataset.num_users

    def num_training_tokens(self) -> int:
        """Input tokens in one epoch of training sequences (each predicts one target)."""
        spans = self.train_end[self.training_users] - self.user_start[self.training_users] - 1
        return int(np.minimum(spans, self.max_seq_len).sum())

    def training_batch(self, users: np.ndarray) -> TrainingBatch:
        """Inputs: the last ``max_seq_len`` training items but one; targets: the same shifted by one."""
        end = self.train_end[users]
        start = np.maximum(self.user_start[users], end - self.max_seq_len - 1)
        input_index, offsets = concatenated_ranges(start, end - 1)
        return TrainingBatch(self._sequences(input_index, input_index + 1, offsets), self._tensor(self.dataset.item_ids[input_index + 1]))

    def evaluation_batch(self, users: np.ndarray, split: EvalSplit) -> EvaluationBatch:
        """The history before each user's validation (or test) item, truncated to ``max_seq_len``."""
        target_index = self.user_end[users] - (2 if split == "valid" else 1)
        start = np.maximum(self.user_start[users], target_index - self.max_seq_len)
        input_index, offsets = concatenated_ranges(start, target_index)
        query_index = input_index + 1  # the event each position predicts; last one is the target
        history_index, history_offsets = concatenated_ranges(self.user_start[users], target_index)
        return EvaluationBatch(
            sequences=self._sequences(input_index, query_index, offsets),
            target_ids=self._tensor(self.dataset.item_ids[target_index]),
            history_ids=self._tensor(self.dataset.item_ids[history_index]),
            history_offsets=self._tensor(history_offsets),
        )

    def training_batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[TrainingBatch]:
        """One epoch over the training users in a fresh random order."""
        order = rng.permutation(self.training_users)
        for first in range(0, len(order), batch_size):
            yield self.training_batch(order[first : first + batch_size])

    def evaluation_batches(self, split: EvalSplit, batch_size: int) -> Iterator[EvaluationBatch]:
        users = np.arange(self.num_users)
        for first in range(0, len(users), batch_size):
            yield self.evaluation_batch(users[first : first + batch_size], split)

    def _sequences(self, input_index: np.ndarray, query_index: np.ndarray, offsets: np.ndarray) -> JaggedSequences:
        stamps = self.dataset.timestamps
        return JaggedSequences(
            item_ids=self._tensor(self.dataset.item_ids[input_index]),
            timestamps=self._tensor(stamps[input_index]),
            query_timestamps=self._tensor(stamps[query_index]),
            offsets=self._tensor(offsets),
        )

    @staticmethod
    def _tensor(array: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
