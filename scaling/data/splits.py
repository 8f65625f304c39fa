"""Which events are trained on and which are evaluated, for each training regime.

* ``multi_epoch`` (full shuffle, paper Table 4): leave-one-out per user. The last target-able event
  is the test target, the one before it the validation target, every earlier target-able event is
  a training target. For ``gr_retrieval`` only positive events are target-able, so the held-out
  events are the user's last two positive ones.
* ``streaming`` (one pass in time order, Tables 2 and 5): events are cut into ``num_windows``
  consecutive time windows holding about equal numbers of events (ties never straddle a
  boundary). The model trains on windows 0 .. W - 3 in order; window W - 2 is the held-out
  validation window every evaluation is scored on (the same events at every point of every
  learning curve, as MLPerf's fixed held-out day), and window W - 1 is the test window.

Every evaluation set has an identifier (:func:`evaluation_set_id`): the same events of the same
data give the same identifier, so the results table can say which rows are comparable. A set may
be cut to the events of a fixed sample of its users (:func:`sample_users`, ``eval.max_users``):
the sample is drawn from the data alone, so every trial of a study scores the same events, and
its events (hence its identifier) differ from the full set's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from scaling.data.sequences import SequenceDataset


@dataclass(frozen=True)
class LeaveOneOutEvents:
    train: np.ndarray  # [*] event indices supervised in training
    valid: np.ndarray  # [*] one event per user that has one
    test: np.ndarray  # [*] one event per user that has one


def leave_one_out_events(dataset: SequenceDataset, supervised: np.ndarray) -> LeaveOneOutEvents:
    """Split each user's supervised events (bool [E]) into train / valid (second last) / test (last).

    Training targets are supervised events strictly before the user's validation event.
    """
    user = np.repeat(np.arange(dataset.num_users), dataset.lengths())
    events = np.flatnonzero(supervised)
    users_of = user[events]
    # Rank of each supervised event from the end of its user's list: 0 = last, 1 = second last.
    counts = np.bincount(users_of, minlength=dataset.num_users)
    ends = np.cumsum(counts)
    from_end = ends[users_of] - 1 - np.arange(len(events))
    test = events[from_end == 0]
    valid = events[from_end == 1]
    valid_of_user = np.full(dataset.num_users, np.iinfo(np.int64).max, dtype=np.int64)
    valid_of_user[user[valid]] = valid
    train = events[(from_end >= 2) & (events < valid_of_user[users_of])]
    # Only users that also have a validation target are tested, so valid and test cover the same users.
    test = test[np.isin(user[test], user[valid])]
    return LeaveOneOutEvents(train=train, valid=valid, test=test)


def time_window_of_events(timestamps: np.ndarray, num_windows: int) -> np.ndarray:
    """[E] window index in 0..num_windows-1 with about E / num_windows events each, ties kept together."""
    if num_windows < 2:
        raise ValueError(f"streaming needs at least 2 time windows; got {num_windows}")
    ordered = np.sort(timestamps, kind="stable")
    cut_ranks = (np.arange(1, num_windows) * len(ordered)) // num_windows
    boundaries = ordered[np.clip(cut_ranks, 0, len(ordered) - 1)]  # first timestamp of windows 1..W-1
    return np.searchsorted(boundaries, timestamps, side="right").astype(np.int64)


def streaming_windows(dataset: SequenceDataset, supervised: np.ndarray, num_windows: int) -> list[np.ndarray]:
    """Supervised event indices of each time window, in window order (some may be empty)."""
    window = time_window_of_events(dataset.timestamps, num_windows)
    events = np.flatnonzero(supervised)
    return [events[window[events] == k] for k in range(num_windows)]


def evaluation_set_id(dataset: SequenceDataset, task: str, events: np.ndarray, label: str) -> str:
    """``label:digest``: the digest covers the data (its fingerprint), the task and the evaluated events.

    Two evaluations with the same identifier scored the same targets of the same data, so their
    metrics are comparable; the label says in words which part of the data it is.
    """
    return f"{label}:{_events_digest(dataset, task, events).hex()[:12]}"


def sample_users(dataset: SequenceDataset, task: str, events: np.ndarray, max_users: int | None) -> np.ndarray:
    """The events (sorted) of at most ``max_users`` of the users ``events`` belong to; all of them when null.

    Users, not events, are sampled: a sequence model scores a user's targets in one pass over the
    user's sequence, so its evaluation costs about as much per user as the user's targets do
    together. The users are the first ``max_users`` of a permutation drawn by a generator seeded
    with the full set's digest (the data, the task and the events), never with a trial's seed: every
    trial evaluated on this set of this data scores the same sample, and another ``max_users`` gives
    other events (a smaller sample is part of a larger one).
    """
    events = np.sort(events)
    users = np.searchsorted(dataset.offsets, events, side="right") - 1  # the user owning each event
    present = np.unique(users)
    if max_users is None or len(present) <= max_users:
        return events
    seed = int.from_bytes(_events_digest(dataset, task, events)[:8], "little")
    kept = np.random.default_rng(seed).permutation(present)[:max_users]  # a smaller sample is part of a larger one
    return events[np.isin(users, kept)]


def _events_digest(dataset: SequenceDataset, task: str, events: np.ndarray) -> bytes:
    """SHA-256 of the data's fingerprint, the task and the (sorted) events."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dataset.fingerprint, sort_keys=True, default=str).encode())
    digest.update(task.encode())
    digest.update(np.ascontiguousarray(np.sort(events), dtype=np.int64).tobytes())
    return digest.digest()
