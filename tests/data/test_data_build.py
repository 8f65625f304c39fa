"""Sequences: filters in order, dense ids in raw-id order, stable chronological order, ratings carried."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaling.data.build import build_sequences
from scaling.data.readers import RawInteractions
from core.errors import DataError


def raw(users, items, timestamps, ratings=None) -> RawInteractions:
    return RawInteractions(
        np.asarray(users, dtype=np.int64),
        np.asarray(items, dtype=np.int64),
        np.asarray(timestamps),
        None if ratings is None else np.asarray(ratings, dtype=np.float32),
    )


def sequences(dataset) -> list[list[int]]:
    return [dataset.item_ids[a:b].tolist() for a, b in zip(dataset.offsets[:-1], dataset.offsets[1:])]


def test_equal_timestamps_keep_file_order() -> None:
    dataset = build_sequences(raw([5, 5, 5, 5, 5], [30, 10, 20, 40, 50], [2, 1, 2, 2, 1]))
    # time 1: items 10, 50 (file order); time 2: 30, 20, 40 (file order); ids dense in raw order
    assert sequences(dataset) == [[1, 5, 3, 2, 4]]
    assert dataset.timestamps.tolist() == [1, 1, 2, 2, 2]


def test_users_and_items_are_numbered_in_sorted_raw_id_order() -> None:
    dataset = build_sequences(raw([900, 7, 900, 42], [1000, 5, 70, 5], [0, 0, 1, 0]))
    assert dataset.num_users == 3 and dataset.num_items == 3
    assert sequences(dataset) == [[1], [1], [3, 2]]  # users 7, 42, 900; items 5->1, 70->2, 1000->3


def test_ratings_follow_their_interactions() -> None:
    dataset = build_sequences(raw([1, 1, 2], [3, 4, 3], [9, 1, 5], ratings=[1.0, 2.0, 3.0]))
    assert sequences(dataset) == [[2, 1], [1]]
    assert dataset.ratings.tolist() == [2.0, 1.0, 3.0]


def test_float_timestamps_order_on_exact_values_and_store_seconds() -> None:
    dataset = build_sequences(raw([1, 1], [1, 2], [3.7, 3.2]))
    assert sequences(dataset) == [[2, 1]]
    assert dataset.timestamps.tolist() == [3, 3]


def test_item_filter_runs_before_user_filter_once() -> None:
    # item 9 appears once: dropped first; user 2 is then left with 2 interactions: dropped.
    # item 8 then has 2 interactions (below 3) but a single pass keeps it.
    users = [1, 1, 1, 2, 2, 2, 3, 3, 3]
    items = [7, 7, 8, 7, 8, 9, 7, 8, 8]
    dataset = build_sequences(raw(users, items, range(9)), min_item_interactions=2, min_user_interactions=3)
    assert dataset.num_users == 2
    assert sequences(dataset) == [[1, 1, 2], [1, 2, 2]]
    counts = dataset.fingerprint["counts"]
    assert (counts["raw_users"], counts["raw_items"], counts["num_interactions"]) == (3, 3, 6)


def test_k_core_repeats_filters_until_stable() -> None:
    # one pass: item 3 (2 uses) goes, so user B (left with 2) goes, which leaves item 2 with 2 uses
    users = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    items = [1, 1, 1, 2, 1, 2, 3, 1, 1, 1, 2, 3, 1, 1, 1]
    one_pass = build_sequences(raw(users, items, range(15)), min_item_interactions=3, min_user_interactions=3)
    assert one_pass.num_users == 3
    assert np.bincount(one_pass.item_ids).tolist()[1:] == [9, 2]
    k_core = build_sequences(raw(users, items, range(15)), 3, 3, k_core=True)
    assert k_core.num_users == 3 and k_core.num_items == 1
    assert np.diff(k_core.offsets).tolist() == [3, 3, 3]


def test_filtering_everything_away_is_an_error() -> None:
    with pytest.raises(DataError, match="no interactions left after filtering.*min_user_interactions=3"):
        build_sequences(raw([1, 2], [1, 1], [0, 0]), min_user_interactions=3)


def test_already_ordered_input_is_kept_as_is() -> None:
    users = np.repeat(np.arange(4), 3)
    dataset = build_sequences(raw(users, np.arange(12) + 100, np.arange(12)))
    assert dataset.item_ids.tolist() == list(range(1, 13))
    assert dataset.offsets.tolist() == [0, 3, 6, 9, 12]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-3, 6), st.integers(0, 10**12), st.integers(0, 4)),  # user, item, timestamp
        min_size=1,
        max_size=60,
    )
)
def test_matches_a_plain_python_stable_sort(rows: list[tuple[int, int, int]]) -> None:
    """Exact duplicates (user, item, timestamp) dropped, the first kept; then a stable sort by (user, timestamp)."""
    users, items, times = (list(column) for column in zip(*rows))
    dataset = build_sequences(raw(users, items, times))
    kept = [i for i in range(len(rows)) if rows[i] not in rows[:i]]
    item_rank = {item: rank + 1 for rank, item in enumerate(sorted(set(items)))}
    expected = [
        [item_rank[items[i]] for i in sorted((i for i in kept if users[i] == user), key=lambda i: times[i])]
        for user in sorted(set(users))
    ]
    assert sequences(dataset) == expected
    assert dataset.num_items == len(item_rank)
    assert dataset.fingerprint["counts"]["num_interactions"] == len(kept)
    assert dataset.fingerprint["counts"]["duplicate_events"] == len(rows) - len(kept)
