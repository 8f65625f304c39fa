"""Jagged batches of token sequences that supervise a chosen set of target events.

Given target events, each user's supervising tokens are cut into chunks that fit
``max_seq_len`` tokens; a chunk's input is the ``max_seq_len`` tokens ending just after its
last supervising token, so the most recent targets see the longest history. Every target is
supervised exactly once. Batches are jagged (values + offsets): no padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from model.inputs import JaggedSequences
from scaling.data.sequences import SequenceDataset
from scaling.data.tokens import TokenStream

ChunkOrder = Literal["shuffle", "time"]


@dataclass(frozen=True)
class SequenceBatch:
    sequences: JaggedSequences
    supervised_rows: Tensor  # [S] token rows (into the batch) whose outputs are scored
    target_events: Tensor  # [S] dataset event index each of those rows predicts
    target_item_ids: Tensor  # [S] item of each target event
    labels: Tensor | None  # [S, K] task labels of each target event (ranking)

    @property
    def num_targets(self) -> int:
        return self.supervised_rows.numel()

    def with_targets(self, sequences: JaggedSequences, supervised_rows: Tensor, targets: Tensor | slice) -> "SequenceBatch":
        """A batch of ``sequences`` keeping the ``targets`` (an index, mask or slice of the [S] targets), now
        scored at ``supervised_rows`` of the new sequences."""
        return replace(
            self,
            sequences=sequences,
            supervised_rows=supervised_rows,
            target_events=self.target_events[targets],
            target_item_ids=self.target_item_ids[targets],
            labels=None if self.labels is None else self.labels[targets],
        )

    def to(self, device: torch.device | str) -> "SequenceBatch":
        return replace(
            self,
            sequences=self.sequences.to(device),
            supervised_rows=self.supervised_rows.to(device),
            target_events=self.target_events.to(device),
            target_item_ids=self.target_item_ids.to(device),
            labels=None if self.labels is None else self.labels.to(device),
        )


@dataclass(frozen=True)
class Chunks:
    """Token windows [start, end) of the flat stream, and the supervising tokens each one scores."""

    start: np.ndarray  # [C]
    end: np.ndarray  # [C]
    first_target_time: np.ndarray  # [C] for time-ordered streaming passes
    token_offsets: np.ndarray  # [C+1] into ``tokens``
    tokens: np.ndarray  # [S] supervising token indices, grouped by chunk, ascending within a chunk


def concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices covering [starts[i], ends[i]) for every i, and the [B+1] offsets of each range."""
    lengths = np.maximum(ends - starts, 0).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    indices = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - starts, lengths)
    return indices, offsets


def visiting_order(times: np.ndarray, order: ChunkOrder, rng: np.random.Generator | None) -> np.ndarray:
    """Indices in the order a pass visits them: a fresh permutation, or by time (stable for ties)."""
    if order == "shuffle":
        if rng is None:
            raise ValueError("a shuffled pass needs a random generator")
        return rng.permutation(len(times))
    return np.argsort(times, kind="stable")


class SequenceBatcher:
    """Builds :class:`SequenceBatch` es from a :class:`TokenStream` for any set of target events."""

    def __init__(self, dataset: SequenceDataset, stream: TokenStream, max_seq_len: int) -> None:
        self.dataset = dataset
        self.stream = stream
        self.max_seq_len = max_seq_len
        self.query_timestamps = stream.query_timestamps()
        self.token_of_event = stream.supervising_token(dataset.num_interactions)
        self.token_user = np.repeat(np.arange(len(stream.offsets) - 1), np.diff(stream.offsets))
        self.user_first_event = np.repeat(dataset.offsets[:-1], dataset.lengths())  # [E]

    def supervisable(self) -> np.ndarray:
        """[E] bool: events some token predicts (e.g. a user's first item has no retrieval query)."""
        return self.token_of_event >= 0

    def chunks(self, target_events: np.ndarray) -> Chunks:
        """Cover the supervising tokens of ``target_events`` with windows of at most max_seq_len tokens."""
        tokens = np.sort(self.token_of_event[target_events])
        if len(tokens) and tokens[0] < 0:
            raise ValueError("some target events have no supervising token; filter with supervisable()")
        user = self.token_user[tokens]
        # Count back from each user's last target token in steps of max_seq_len: tokens in the same
        # step fit in one window that ends right after the step's last target.
        last_of_user = np.zeros(len(self.stream.offsets) - 1, dtype=np.int64)
        np.maximum.at(last_of_user, user, tokens)
        step = (last_of_user[user] - tokens) // self.max_seq_len
        key = np.stack([user, -step])
        new_chunk = np.ones(len(tokens), dtype=bool)
        new_chunk[1:] = np.any(key[:, 1:] != key[:, :-1], axis=0)
        chunk_of_token = np.cumsum(new_chunk) - 1
        num_chunks = int(chunk_of_token[-1]) + 1 if len(tokens) else 0
        token_offsets = np.zeros(num_chunks + 1, dtype=np.int64)
        np.cumsum(np.bincount(chunk_of_token, minlength=num_chunks), out=token_offsets[1:])
        end = tokens[token_offsets[1:] - 1] + 1
        user_start = self.stream.offsets[:-1][user[token_offsets[:-1]]] if num_chunks else end
        start = np.maximum(user_start, end - self.max_seq_len)
        first_time = self.stream.timestamps[tokens[token_offsets[:-1]]] if num_chunks else end
        return Chunks(start, end, first_time, token_offsets, tokens)

    def batches(self, chunks: Chunks, batch_size: int, order: ChunkOrder, rng: np.random.Generator | None = None) -> Iterator[SequenceBatch]:
        """Batches of ``batch_size`` chunks, shuffled or in the time order of their first target."""
        sequence = visiting_order(chunks.first_target_time, order, rng)
        for first in range(0, len(sequence), batch_size):
            yield self.batch(chunks, sequence[first : first + batch_size])

    def batch(self, chunks: Chunks, chosen: np.ndarray) -> SequenceBatch:
        """The jagged batch of the chunks ``chosen`` (indices into ``chunks``)."""
        token_index, offsets = concatenated_ranges(chunks.start[chosen], chunks.end[chosen])
        target_index, target_offsets = concatenated_ranges(chunks.token_offsets[chosen], chunks.token_offsets[chosen + 1])
        supervising = chunks.tokens[target_index]
        chunk_in_batch = np.repeat(np.arange(len(chosen)), np.diff(target_offsets))
        rows = offsets[chunk_in_batch] + supervising - chunks.start[chosen][chunk_in_batch]
        events = self.stream.target_event[supervising]
        stream = self.stream
        labels = self.dataset.labels[events] if self.dataset.labels is not None else None
        sequences = JaggedSequences(
            item_ids=_tensor(stream.item_ids[token_index]),
            timestamps=_tensor(stream.timestamps[token_index]),
            query_timestamps=_tensor(self.query_timestamps[token_index]),
            offsets=_tensor(offsets),
            action_ids=_tensor(stream.action_ids[token_index]),
            context_ids=_tensor(stream.context_ids[token_index]),
        )
        return SequenceBatch(
            sequences=sequences,
            supervised_rows=_tensor(rows),
            target_events=_tensor(events),
            target_item_ids=_tensor(self.dataset.item_ids[events]),
            labels=None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)),
        )

    def history_items(self, target_events: Tensor) -> tuple[Tensor, Tensor]:
        """Items of every event of the user before each target event (CSR: values, [S+1] offsets)."""
        events = target_events.cpu().numpy()
        index, offsets = concatenated_ranges(self.user_first_event[events], events)
        return _tensor(self.dataset.item_ids[index]), _tensor(offsets)


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
