"""Leave-one-out split and jagged batches."""

from __future__ import annotations

import numpy as np

from scaling.data.batching import LeaveOneOutSplit, concatenated_ranges
from scaling.data.sequences import SequenceDataset


def make_dataset() -> SequenceDataset:
    # user 0: items 1..6 at t=10..60; user 1: items 7, 8, 9 at t=1..3
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])
    stamps = np.array([10, 20, 30, 40, 50, 60, 1, 2, 3])
    return SequenceDataset(items, stamps, np.array([0, 6, 9]), num_items=9)


def test_concatenated_ranges():
    index, offsets = concatenated_ranges(np.array([5, 0, 2]), np.array([7, 0, 5]))
    assert index.tolist() == [5, 6, 2, 3, 4]
    assert offsets.tolist() == [0, 2, 2, 5]


def test_training_batch_is_the_shifted_training_prefix_truncated_to_max_len():
    split = LeaveOneOutSplit(make_dataset(), max_seq_len=2)
    assert split.training_users.tolist() == [0]  # user 1 has a single training item
    batch = split.training_batch(np.array([0]))
    # training items of user 0: 1 2 3 4; the last max_seq_len + 1 = 3 of them -> inputs 2 3, targets 3 4
    assert batch.sequences.item_ids.tolist() == [2, 3]
    assert batch.target_ids.tolist() == [3, 4]
    assert batch.sequences.timestamps.tolist() == [20, 30]
    assert batch.sequences.query_timestamps.tolist() == [30, 40]


def test_validation_and_test_batches_hold_out_the_last_two_items():
    split = LeaveOneOutSplit(make_dataset(), max_seq_len=3)
    valid = split.evaluation_batch(np.array([0, 1]), "valid")
    assert valid.target_ids.tolist() == [5, 8]
    assert valid.sequences.item_ids.tolist() == [2, 3, 4, 7]
    assert valid.sequences.offsets.tolist() == [0, 3, 4]
    # the last query time is the target's time, known when the request is made
    assert valid.sequences.query_timestamps.tolist() == [30, 40, 50, 2]
    assert valid.history_ids.tolist() == [1, 2, 3, 4, 7]  # the full history, not just the window
    test = split.evaluation_batch(np.array([0, 1]), "test")
    assert test.target_ids.tolist() == [6, 9]
    assert test.sequences.item_ids.tolist() == [3, 4, 5, 7, 8]


def test_epoch_covers_every_training_user_once_in_seeded_order():
    split = LeaveOneOutSplit(make_dataset(), max_seq_len=10)
    first = [b.target_ids.tolist() for b in split.training_batches(1, np.random.default_rng(0))]
    again = [b.target_ids.tolist() for b in split.training_batches(1, np.random.default_rng(0))]
    assert first == again == [[2, 3, 4]]
