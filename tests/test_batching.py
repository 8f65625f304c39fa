"""Token streams, leave-one-out and streaming splits, and chunked jagged batches."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.data.actions import with_rating_actions
from scaling.data.batching import SequenceBatcher, concatenated_ranges
from scaling.data.sequences import ContextEvents, SequenceDataset
from scaling.data.splits import (
    evaluation_set_id, leave_one_out_events, sample_users, streaming_windows, time_window_of_events,
)
from scaling.data.tokens import build_token_stream


def make_dataset(with_contexts: bool = False) -> SequenceDataset:
    # user 0: items 1..6 at t=10..60 rated 5 4 1 5 2 5; user 1: items 7, 8, 9 at t=1..3 rated 4 3 5
    items = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])
    stamps = np.array([10, 20, 30, 40, 50, 60, 1, 2, 3])
    ratings = np.array([5, 4, 1, 5, 2, 5, 4, 3, 5], dtype=np.float32)
    contexts = None
    if with_contexts:  # user 0 switches device at t=30 (token 2) having started on token 1 at t=5
        contexts = ContextEvents(np.array([1, 2]), np.array([5, 30]), np.array([0, 2, 2]), num_tokens=2)
    return with_rating_actions(SequenceDataset(items, stamps, np.array([0, 6, 9]), num_items=9, ratings=ratings, contexts=contexts))


def test_concatenated_ranges():
    index, offsets = concatenated_ranges(np.array([5, 0, 2]), np.array([7, 0, 5]))
    assert index.tolist() == [5, 6, 2, 3, 4]
    assert offsets.tolist() == [0, 2, 2, 5]


def test_rating_actions_and_tasks():
    dataset = make_dataset()
    assert dataset.task_names == ("like", "five_star")
    assert dataset.action_tokens[:3].tolist() == [10, 8, 2]  # half-star tokens
    assert dataset.labels[:3].tolist() == [[1, 1], [1, 0], [0, 0]]


def test_retrieval_stream_predicts_the_next_item():
    stream = build_token_stream(make_dataset(), "retrieval")
    assert stream.item_ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert stream.target_event.tolist() == [1, 2, 3, 4, 5, -1, 7, 8, -1]
    assert stream.query_timestamps().tolist() == [20, 30, 40, 50, 60, 60, 2, 3, 3]


def test_ranking_stream_interleaves_items_actions_and_contexts():
    dataset = make_dataset(with_contexts=True)
    stream = build_token_stream(dataset, "ranking")
    user0 = slice(0, stream.offsets[1])
    # ctx1, Phi_0, a_0, Phi_1, a_1, ctx2 (at t=30, before the event at t=30), Phi_2, a_2, ...
    assert stream.context_ids[user0].tolist()[:8] == [1, 0, 0, 0, 0, 2, 0, 0]
    assert stream.item_ids[user0].tolist()[:8] == [0, 1, 0, 2, 0, 0, 3, 0]
    assert stream.action_ids[user0].tolist()[:8] == [0, 0, 10, 0, 8, 0, 0, 2]
    # item tokens predict their own event's action; nothing else is supervised
    assert stream.target_event[user0].tolist()[:8] == [-1, 0, -1, 1, -1, -1, 2, -1]


def test_gr_retrieval_targets_only_positive_next_items():
    stream = build_token_stream(make_dataset(), "gr_retrieval", positive_task="like")
    # user 0 'like' labels: 1 1 0 1 0 1 -> token of event i predicts event i+1 when it is liked
    assert stream.target_event[:6].tolist() == [1, -1, 3, -1, 5, -1]
    assert stream.item_ids[:3].tolist() == [1, 2, 3] and stream.action_ids[:3].tolist() == [10, 8, 2]


def test_leave_one_out_holds_out_the_last_two_supervised_events():
    dataset = make_dataset()
    batcher = SequenceBatcher(dataset, build_token_stream(dataset, "retrieval"), max_seq_len=3)
    split = leave_one_out_events(dataset, batcher.supervisable())
    assert split.test.tolist() == [5, 8] and split.valid.tolist() == [4, 7]
    assert split.train.tolist() == [1, 2, 3]  # event 0 has no query; user 1 has no training target
    valid = next(batcher.batches(batcher.chunks(split.valid), 8, "time"))
    # the query for event 4 reads items 2, 3, 4 (max_seq_len tokens ending at token 3)
    assert valid.sequences.item_ids.tolist() == [7, 2, 3, 4]  # time order: user 1's target is earlier
    assert valid.target_item_ids.tolist() == [8, 5]
    assert valid.sequences.query_timestamps.tolist()[-1] == 50  # the target's own time


def test_chunks_cover_every_target_once_within_max_len():
    dataset = make_dataset()
    batcher = SequenceBatcher(dataset, build_token_stream(dataset, "ranking"), max_seq_len=4)
    events = np.flatnonzero(batcher.supervisable())
    chunks = batcher.chunks(events)
    assert np.all(chunks.end - chunks.start <= 4)
    batch = batcher.batch(chunks, np.arange(len(chunks.start)))
    assert sorted(batch.target_events.tolist()) == events.tolist()
    # each supervised row is the item token of its target event
    rows = batch.supervised_rows.numpy()
    assert (batch.sequences.item_ids.numpy()[rows] == batch.target_item_ids.numpy()).all()
    assert (batch.sequences.action_ids.numpy()[rows] == 0).all()  # the action is never an input of its own prediction


def test_time_windows_have_equal_counts_and_keep_ties_together():
    stamps = np.array([1, 1, 1, 2, 3, 4, 5, 6, 7, 8])
    window = time_window_of_events(stamps, 3)
    assert window.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    dataset = make_dataset()
    windows = streaming_windows(dataset, np.ones(9, dtype=bool), 3)
    assert sum(len(w) for w in windows) == 9
    assert all(dataset.timestamps[a].max() <= dataset.timestamps[b].min() for a, b in zip(windows[0], windows[1]))


def test_a_user_sample_of_an_evaluation_set_is_fixed_by_the_data_and_named_apart():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, size=40)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    dataset = SequenceDataset(rng.integers(1, 30, offsets[-1]), np.arange(offsets[-1]), offsets, num_items=30,
                              fingerprint={"source": "test"})
    events = np.flatnonzero(rng.random(offsets[-1]) < 0.5)
    user_of = lambda e: np.searchsorted(offsets, e, side="right") - 1  # noqa: E731
    sample = sample_users(dataset, "retrieval", events, 10)
    kept = np.unique(user_of(sample))
    assert len(kept) == 10
    assert np.array_equal(sample, events[np.isin(user_of(events), kept)])  # every event of a kept user, nothing else
    # the sample depends on the data and the set only: drawn again (any trial, any seed), it is the same
    assert np.array_equal(sample_users(dataset, "retrieval", events[::-1].copy(), 10), sample)
    assert np.isin(sample_users(dataset, "retrieval", events, 5), sample).all()  # a smaller sample is part of it
    other_data = SequenceDataset(dataset.item_ids, dataset.timestamps, offsets, num_items=30, fingerprint={"source": "other"})
    assert not np.array_equal(sample_users(other_data, "retrieval", events, 10), sample)
    # null, or at least as many users as the set has: the whole set, under the whole set's identifier
    assert np.array_equal(sample_users(dataset, "retrieval", events, None), events)
    assert np.array_equal(sample_users(dataset, "retrieval", events, 40), events)
    identifiers = {evaluation_set_id(dataset, "retrieval", sample_users(dataset, "retrieval", events, n), "valid")
                   for n in (None, 5, 10, 20)}
    assert len(identifiers) == 4  # each size is its own evaluation set: never one frontier


def test_history_items_are_everything_before_the_target():
    dataset = make_dataset()
    batcher = SequenceBatcher(dataset, build_token_stream(dataset, "retrieval"), max_seq_len=2)
    import torch

    history, offsets = batcher.history_items(torch.tensor([4, 7]))
    assert history.tolist() == [1, 2, 3, 4, 7] and offsets.tolist() == [0, 4, 5]


def test_gr_tasks_need_actions():
    dataset = SequenceDataset(np.array([1, 2, 3]), np.array([1, 2, 3]), np.array([0, 3]), num_items=3)
    from core.errors import DataError

    with pytest.raises(DataError, match="needs actions"):
        build_token_stream(dataset, "ranking")
