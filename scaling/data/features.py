"""Hand-crafted causal features of DLRM impressions: counters, ratios, recency, context, history.

An impression is one event of a :class:`SequenceDataset` (the item shown to a user, whose
action supplies the labels). DLRM baselines do not read the raw sequence the way GR models
do; they read what a production feature-logging system would have joined to the impression
at request time (paper Section 2.1, "weighted and decayed counters, ratios ... user's past
CTR on items matching a given topic"; Appendix E). Everything is vectorised: the dataset is
indexed once (sorts, prefix sums) and any batch of impressions is then featurised with
``searchsorted`` and gathers, never a Python loop over impressions.

Causality (the tie rule). For impression e of user u at time t_e:

* user features (counts, positive rates, windows, recency, history) read only u's events
  *strictly before e in u's sequence*. Events of u at the same timestamp but earlier in the
  sequence count: the sequence order is the order of what happened, as for GR models;
* global features (item, category and overall statistics, aggregated over all users) read
  only events with timestamp *strictly earlier* than t_e, so nothing logged at the same
  moment as the impression (including e itself) leaks in;
* contextual tokens (device, locale, ...) are the request's context: the latest value of
  each contextual feature of u with timestamp <= t_e (known when the request arrives);
* e's own labels, and anything later, never enter e's features.

Rates are smoothed towards a causal prior with ``prior_strength`` pseudo-observations
(user rate -> global rate; user-in-category rate -> the user's rate; item and category rates
-> global rate), so a user or item with no history gets the prior rather than 0/0.
Counts are ``log1p``-transformed and times are ``log1p(seconds)``; fit a
:class:`DenseStandardizer` on training impressions to standardise the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from model.inputs import FeatureSpec, ImpressionFeatures
from scaling.data.sequences import SequenceDataset

HOUR, DAY = 3600, 86_400
DEFAULT_WINDOWS_SECONDS: tuple[int, ...] = (HOUR, DAY, 7 * DAY, 30 * DAY)
DEFAULT_PRIOR_STRENGTH = 2.0
_MAX_KEY = 2**62  # composite (group, time rank) keys must stay inside int64


def dense_feature_names(dataset: SequenceDataset, windows_seconds: Sequence[int] = DEFAULT_WINDOWS_SECONDS) -> tuple[str, ...]:
    """Names of the dense columns :class:`ImpressionFeaturizer` emits for ``dataset``, in order."""
    tasks = dataset.task_names or tuple(f"task{k}" for k in range(_num_tasks(dataset)))
    names = ["user_log_events", *(f"user_log_events_{_window_name(w)}" for w in windows_seconds)]
    names += ["user_has_history", "user_log_seconds_since_last"]
    names += [f"user_rate_{t}" for t in tasks] + [f"global_rate_{t}" for t in tasks]
    names += ["item_log_events"] + [f"item_rate_{t}" for t in tasks]
    if dataset.item_categories is not None:
        names += ["user_category_log_events", "user_category_share", "user_category_has_history",
                  "user_category_log_seconds_since_last"]
        names += [f"user_category_rate_{t}" for t in tasks]
        names += ["category_log_events"] + [f"category_rate_{t}" for t in tasks]
    return tuple(names)


def feature_spec(
    dataset: SequenceDataset,
    history_len: int,
    windows_seconds: Sequence[int] = DEFAULT_WINDOWS_SECONDS,
    include_user_id: bool = False,
) -> FeatureSpec:
    """The :class:`FeatureSpec` a model needs to consume this dataset's impression features."""
    if not dataset.has_actions:
        raise ValueError("DLRM ranking features need SequenceDataset.labels and action_tokens; this dataset has none")
    _check_vocabularies(dataset)
    names = dense_feature_names(dataset, windows_seconds)
    return FeatureSpec(
        num_items=dataset.num_items,
        num_categories=dataset.num_categories if dataset.item_categories is not None else 0,
        num_dense=len(names),
        sparse_vocab_sizes=_sparse_vocab_sizes(dataset, include_user_id),
        num_action_tokens=max(dataset.num_action_tokens, 1),
        num_tasks=_num_tasks(dataset),
        history_len=history_len,
        dense_names=names,
        task_names=dataset.task_names,
    )


def impression_features(
    dataset: SequenceDataset,
    event_index: np.ndarray,
    history_len: int,
    windows_seconds: Sequence[int] = DEFAULT_WINDOWS_SECONDS,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    include_user_id: bool = False,
) -> ImpressionFeatures:
    """Features of the impressions ``event_index`` (indices into the flat event arrays).

    Indexes the whole dataset first; to featurise many batches, build one
    :class:`ImpressionFeaturizer` and call it per batch.
    """
    featurizer = ImpressionFeaturizer(dataset, history_len, windows_seconds, prior_strength, include_user_id)
    return featurizer(event_index)


def impression_labels(dataset: SequenceDataset, event_index: np.ndarray) -> Tensor:
    """[N, T] float32 labels of the impressions (the ranking targets; never a feature)."""
    if dataset.labels is None:
        raise ValueError("the dataset has no labels; ranking needs SequenceDataset.labels")
    return torch.from_numpy(np.ascontiguousarray(dataset.labels[_checked_index(dataset, event_index)], dtype=np.float32))


class ImpressionFeaturizer:
    """Indexes a dataset once (sorted orders, prefix sums); featurises any batch of impressions.

    The index holds about 8 E (5 T + 12) bytes for E events and T tasks (2 GB at E = 10M,
    T = 3); a batch of N impressions then costs O(N (log E + K)), so featurise per batch.
    """

    def __init__(
        self,
        dataset: SequenceDataset,
        history_len: int,
        windows_seconds: Sequence[int] = DEFAULT_WINDOWS_SECONDS,
        prior_strength: float = DEFAULT_PRIOR_STRENGTH,
        include_user_id: bool = False,
    ) -> None:
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1; got {history_len}")
        if any(w <= 0 for w in windows_seconds):
            raise ValueError(f"every window must be > 0 seconds; got {tuple(windows_seconds)}")
        if prior_strength <= 0:
            raise ValueError(f"prior_strength must be > 0; got {prior_strength}")
        self.spec = feature_spec(dataset, history_len, windows_seconds, include_user_id)
        self.dataset = dataset
        self.history_len = history_len
        self.windows_seconds = tuple(int(w) for w in windows_seconds)
        self.prior_strength = float(prior_strength)
        self.include_user_id = include_user_id
        self._index = _EventIndex.build(dataset)
        self._contexts = _context_columns(dataset)

    def __call__(self, event_index: np.ndarray) -> ImpressionFeatures:
        """Features of impressions ``event_index`` [N] (indices into the flat event arrays)."""
        events = _checked_index(self.dataset, event_index)
        queries = self._index.queries(events)
        item_ids, categories = self.dataset.item_ids[events], self._index.categories[events]
        history_items, history_actions = self._history(events, queries.user_start)
        sparse = [column.at(queries.user, queries.time) for column in self._contexts]
        if self.include_user_id:
            sparse.append(queries.user + 1)
        return ImpressionFeatures(
            target_item_ids=_tensor(item_ids),
            target_categories=_tensor(categories),
            dense=torch.from_numpy(self._dense(events, queries).astype(np.float32)),
            sparse=_tensor(np.stack(sparse, axis=1) if sparse else np.zeros((len(events), 0), np.int64)),
            history_item_ids=_tensor(history_items),
            history_actions=_tensor(history_actions),
        )

    def _dense(self, events: np.ndarray, q: "_Queries") -> np.ndarray:
        """[N, F] float64 dense columns in :func:`dense_feature_names` order."""
        index, alpha = self._index, self.prior_strength
        columns: list[np.ndarray] = [np.log1p(q.user_count)[:, None]]
        for window in self.windows_seconds:
            columns.append(np.log1p(index.user_events_since(events, q, window))[:, None])
        has_history = q.user_count > 0
        previous_time = index.timestamps[np.maximum(events - 1, 0)]
        columns += [has_history[:, None], _log_seconds(q.time - previous_time, has_history)[:, None]]
        global_count, global_positives = index.global_stats.before(np.zeros_like(events), q.time_rank)
        global_rate = (global_positives + 1.0) / (global_count[:, None] + 2.0)  # Laplace: 1/2 before any event
        user_positives = index.label_prefix[events] - index.label_prefix[q.user_start]
        user_rate = _smoothed(user_positives, q.user_count, global_rate, alpha)
        columns += [user_rate, global_rate]
        item_count, item_positives = index.item_stats.before(self.dataset.item_ids[events], q.time_rank)
        columns += [np.log1p(item_count)[:, None], _smoothed(item_positives, item_count, global_rate, alpha)]
        if self.dataset.item_categories is not None:
            columns += self._category_columns(events, q, user_rate, global_rate)
        return np.concatenate([c.astype(np.float64) for c in columns], axis=1)

    def _category_columns(
        self, events: np.ndarray, q: "_Queries", user_rate: np.ndarray, global_rate: np.ndarray
    ) -> list[np.ndarray]:
        index, alpha = self._index, self.prior_strength
        count = index.user_category_count[events]
        has_history = count > 0
        since_last = _log_seconds(q.time - index.user_category_last_time[events], has_history)
        rate = _smoothed(index.user_category_positives[events], count, user_rate, alpha)
        share = count / np.maximum(q.user_count, 1)
        category_count, category_positives = index.category_stats.before(index.categories[events], q.time_rank)
        return [
            np.log1p(count)[:, None], share[:, None], has_history[:, None], since_last[:, None], rate,
            np.log1p(category_count)[:, None], _smoothed(category_positives, category_count, global_rate, alpha),
        ]

    def _history(self, events: np.ndarray, user_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, K] the user's K most recent earlier items and their action tokens, right-aligned."""
        positions = events[:, None] + np.arange(-self.history_len, 0)[None, :]  # [N, K]
        # Row 0 of the padded arrays is padding: earlier users' rows map there.
        padded_rows = np.where(positions >= user_start[:, None], positions + 1, 0)
        return self._index.padded_items[padded_rows], self._index.padded_actions[padded_rows]


@dataclass(frozen=True)
class DenseStandardizer:
    """Per-column (x - mean) / std; fit on training impressions only, then apply to every split."""

    mean: np.ndarray  # [F]
    std: np.ndarray  # [F], >= a small floor so constant columns map to 0

    @classmethod
    def fit(cls, dense: Tensor | np.ndarray) -> "DenseStandardizer":
        values = np.asarray(dense, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"fit a DenseStandardizer on a non-empty [N, F] matrix; got shape {values.shape}")
        return cls(values.mean(axis=0), np.maximum(values.std(axis=0), 1e-6))

    def __call__(self, features: ImpressionFeatures) -> ImpressionFeatures:
        if features.dense.shape[1] != len(self.mean):
            raise ValueError(f"standardizer was fit on {len(self.mean)} dense columns; features have {features.dense.shape[1]}")
        mean = torch.as_tensor(self.mean, dtype=features.dense.dtype, device=features.dense.device)
        std = torch.as_tensor(self.std, dtype=features.dense.dtype, device=features.dense.device)
        return replace(features, dense=(features.dense - mean) / std)


# ---------------------------------------------------------------------------------------------
# The dataset index: everything here is built once per dataset with sorts and prefix sums.


@dataclass(frozen=True)
class _Queries:
    """Per-impression coordinates shared by every feature."""

    user: np.ndarray  # [N]
    user_start: np.ndarray  # [N] flat index of the user's first event
    user_count: np.ndarray  # [N] the user's events before the impression
    time: np.ndarray  # [N] impression timestamp
    time_rank: np.ndarray  # [N] index of the timestamp among the dataset's distinct timestamps


@dataclass(frozen=True)
class _GroupTimeIndex:
    """Events sorted by (group, timestamp): per-group counts and label sums strictly before a time."""

    keys: np.ndarray  # [E] group * num_ranks + time_rank, sorted ascending
    label_prefix: np.ndarray  # [E + 1, T] label sums of the first i sorted events
    num_ranks: int

    @classmethod
    def build(cls, groups: np.ndarray, time_rank: np.ndarray, labels: np.ndarray, num_ranks: int) -> "_GroupTimeIndex":
        if (int(groups.max(initial=0)) + 1) * num_ranks >= _MAX_KEY:
            raise ValueError("too many (group, timestamp) pairs for int64 keys; coarsen timestamps")
        keys = groups.astype(np.int64) * num_ranks + time_rank
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], _exclusive_cumsum(labels[order]), num_ranks)

    def before(self, group: np.ndarray, time_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N] count and [N, T] label sums of ``group``'s events with a time rank < ``time_rank``."""
        start = np.searchsorted(self.keys, group * self.num_ranks, side="left")
        end = np.searchsorted(self.keys, group * self.num_ranks + time_rank, side="left")
        return end - start, self.label_prefix[end] - self.label_prefix[start]


@dataclass(frozen=True)
class _EventIndex:
    timestamps: np.ndarray  # [E]
    distinct_times: np.ndarray  # [R] sorted distinct timestamps
    time_rank: np.ndarray  # [E] index into distinct_times
    user_of_event: np.ndarray  # [E]
    offsets: np.ndarray  # [U + 1]
    user_time_keys: np.ndarray  # [E] user * R + time_rank, ascending in flat order
    label_prefix: np.ndarray  # [E + 1, T] flat-order label sums (per-user sums are differences)
    categories: np.ndarray  # [E] category of each event's item (0 when unknown)
    padded_items: np.ndarray  # [E + 1] 0 then item_ids, so history padding is a gather of row 0
    padded_actions: np.ndarray  # [E + 1] 0 then action_tokens
    user_category_count: np.ndarray  # [E] the user's earlier events in the same category
    user_category_positives: np.ndarray  # [E, T] their label sums
    user_category_last_time: np.ndarray  # [E] timestamp of the latest of them (undefined when count is 0)
    global_stats: _GroupTimeIndex
    item_stats: _GroupTimeIndex
    category_stats: _GroupTimeIndex

    @classmethod
    def build(cls, dataset: SequenceDataset) -> "_EventIndex":
        timestamps = np.asarray(dataset.timestamps, dtype=np.int64)
        offsets = np.asarray(dataset.offsets, dtype=np.int64)
        user_of_event = np.repeat(np.arange(dataset.num_users, dtype=np.int64), np.diff(offsets))
        _check_chronological(timestamps, user_of_event)
        distinct_times, time_rank = np.unique(timestamps, return_inverse=True)
        num_ranks = len(distinct_times) + 1
        if dataset.num_users * num_ranks >= _MAX_KEY:
            raise ValueError("too many (user, timestamp) pairs for int64 keys; coarsen timestamps")
        labels = np.asarray(dataset.labels, dtype=np.float64)
        categories = (
            np.asarray(dataset.item_categories, dtype=np.int64)[dataset.item_ids]
            if dataset.item_categories is not None
            else np.zeros(len(timestamps), dtype=np.int64)
        )
        count, positives, last_time = _within_user_category(user_of_event, categories, timestamps, labels)
        return cls(
            timestamps=timestamps,
            distinct_times=distinct_times,
            time_rank=time_rank.astype(np.int64),
            user_of_event=user_of_event,
            offsets=offsets,
            user_time_keys=user_of_event * num_ranks + time_rank,
            label_prefix=_exclusive_cumsum(labels),
            categories=categories,
            padded_items=np.concatenate([[0], np.asarray(dataset.item_ids, dtype=np.int64)]),
            padded_actions=np.concatenate([[0], np.asarray(dataset.action_tokens, dtype=np.int64)]),
            user_category_count=count,
            user_category_positives=positives,
            user_category_last_time=last_time,
            global_stats=_GroupTimeIndex.build(np.zeros_like(categories), time_rank, labels, num_ranks),
            item_stats=_GroupTimeIndex.build(np.asarray(dataset.item_ids, dtype=np.int64), time_rank, labels, num_ranks),
            category_stats=_GroupTimeIndex.build(categories, time_rank, labels, num_ranks),
        )

    def queries(self, events: np.ndarray) -> _Queries:
        user = self.user_of_event[events]
        user_start = self.offsets[user]
        return _Queries(user, user_start, events - user_start, self.timestamps[events], self.time_rank[events])

    def user_events_since(self, events: np.ndarray, q: _Queries, window_seconds: int) -> np.ndarray:
        """[N] the user's events before each impression with timestamp in (t - window, t]."""
        num_ranks = len(self.distinct_times) + 1
        first_rank_inside = np.searchsorted(self.distinct_times, q.time - window_seconds, side="right")
        first = np.searchsorted(self.user_time_keys, q.user * num_ranks + first_rank_inside, side="left")
        return events - first  # first <= e: the impression itself lies inside its own window


def _within_user_category(
    users: np.ndarray, categories: np.ndarray, timestamps: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event: count, label sums and latest timestamp of the user's earlier events in its category."""
    num_events = len(users)
    order = np.lexsort((np.arange(num_events), categories, users))  # (user, category, position)
    sorted_users, sorted_categories = users[order], categories[order]
    starts_group = np.ones(num_events, dtype=bool)
    starts_group[1:] = (sorted_users[1:] != sorted_users[:-1]) | (sorted_categories[1:] != sorted_categories[:-1])
    rows = np.arange(num_events)
    group_start = np.maximum.accumulate(np.where(starts_group, rows, 0))
    prefix = _exclusive_cumsum(labels[order])
    sorted_times = timestamps[order]
    count, positives, last_time = np.empty(num_events, np.int64), np.empty_like(labels), np.empty(num_events, np.int64)
    count[order] = rows - group_start
    positives[order] = prefix[rows] - prefix[group_start]
    last_time[order] = np.where(starts_group, 0, sorted_times[np.maximum(rows - 1, 0)])
    return count, positives, last_time


@dataclass(frozen=True)
class _ContextColumn:
    """One contextual feature: each user's latest value at or before a time, as a local id."""

    keys: np.ndarray  # [C_f] user * (R + 1) + rank of the event's time, ascending
    users: np.ndarray  # [C_f]
    values: np.ndarray  # [C_f] local ids 1..vocab_size - 1
    distinct_times: np.ndarray  # [R] sorted distinct context timestamps (all features)

    def at(self, user: np.ndarray, time: np.ndarray) -> np.ndarray:
        """[N] the value in force for ``user`` at ``time`` (0 when none was set yet)."""
        if len(self.keys) == 0:
            return np.zeros(len(user), dtype=np.int64)
        num_ranks = len(self.distinct_times) + 1
        ranks_at_or_before = np.searchsorted(self.distinct_times, time, side="right")
        last = np.searchsorted(self.keys, user * num_ranks + ranks_at_or_before, side="left") - 1
        safe = np.maximum(last, 0)
        found = (last >= 0) & (self.users[safe] == user)
        return np.where(found, self.values[safe], 0).astype(np.int64)


def _context_columns(dataset: SequenceDataset) -> list[_ContextColumn]:
    contexts = dataset.contexts
    if contexts is None:
        return []
    if len(contexts.offsets) != dataset.num_users + 1:
        raise ValueError(f"contexts.offsets has {len(contexts.offsets)} rows; expected num_users + 1 = {dataset.num_users + 1}")
    users = np.repeat(np.arange(dataset.num_users, dtype=np.int64), np.diff(contexts.offsets))
    tokens = np.asarray(contexts.tokens, dtype=np.int64)
    stamps = np.asarray(contexts.timestamps, dtype=np.int64)
    _check_chronological(stamps, users, what="context timestamps")
    distinct_times, rank = np.unique(stamps, return_inverse=True)
    keys = users * (len(distinct_times) + 1) + rank
    columns = []
    for local_ids in _local_context_ids(contexts.num_tokens, contexts.token_feature):
        rows = np.flatnonzero(local_ids[tokens] > 0)
        columns.append(_ContextColumn(keys[rows], users[rows], local_ids[tokens[rows]], distinct_times))
    return columns


def _local_context_ids(num_tokens: int, token_feature: np.ndarray | None) -> list[np.ndarray]:
    """Per contextual feature, a [num_tokens + 1] map from shared token id to a local id (0 = other)."""
    if token_feature is None:  # one column over the whole shared vocabulary
        return [np.arange(num_tokens + 1, dtype=np.int64)]
    owner = np.asarray(token_feature, dtype=np.int64)
    maps = []
    for feature in np.unique(owner[1:]):
        member = np.zeros(num_tokens + 1, dtype=bool)
        member[1:] = owner[1:] == feature
        maps.append(np.where(member, np.cumsum(member), 0).astype(np.int64))
    return maps


def _sparse_vocab_sizes(dataset: SequenceDataset, include_user_id: bool) -> tuple[int, ...]:
    sizes = []
    if dataset.contexts is not None:
        sizes += [int(ids.max()) + 1 for ids in _local_context_ids(dataset.contexts.num_tokens, dataset.contexts.token_feature)]
    if include_user_id:
        sizes.append(dataset.num_users + 1)
    return tuple(sizes)


# ---------------------------------------------------------------------------------------------
# Small pure helpers.


def _num_tasks(dataset: SequenceDataset) -> int:
    return 0 if dataset.labels is None else int(np.shape(dataset.labels)[1])


def _window_name(seconds: int) -> str:
    for unit, size in (("d", DAY), ("h", HOUR)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _smoothed(positives: np.ndarray, count: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """[N, T] (positives + strength * prior) / (count + strength): the prior until evidence accrues."""
    return (positives + strength * prior) / (count[:, None] + strength)


def _log_seconds(gap: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """log1p of a non-negative time gap in seconds, 0 where there is no earlier event."""
    return np.where(defined, np.log1p(np.maximum(gap, 0)), 0.0)


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    """[E + 1, ...] float64 running sums with a leading zero row: out[i] = values[:i].sum(0)."""
    out = np.zeros((len(values) + 1, *values.shape[1:]), dtype=np.float64)
    np.cumsum(values, axis=0, out=out[1:])
    return out


def _check_vocabularies(dataset: SequenceDataset) -> None:
    """Ids beyond the declared vocabularies would index past the models' embedding tables."""
    if dataset.item_categories is not None and int(np.max(dataset.item_categories)) > dataset.num_categories:
        raise ValueError(f"item_categories go up to {int(np.max(dataset.item_categories))} but num_categories is "
                         f"{dataset.num_categories}; set num_categories to the largest category id")
    if dataset.num_interactions and int(np.max(dataset.action_tokens)) > dataset.num_action_tokens:
        raise ValueError(f"action_tokens go up to {int(np.max(dataset.action_tokens))} but num_action_tokens is "
                         f"{dataset.num_action_tokens}; set num_action_tokens to the largest action token")


def _check_chronological(timestamps: np.ndarray, owners: np.ndarray, what: str = "timestamps") -> None:
    decreasing = (np.diff(timestamps) < 0) & (owners[1:] == owners[:-1])
    if decreasing.any():
        first = int(np.flatnonzero(decreasing)[0]) + 1
        raise ValueError(
            f"{what} decrease within user {int(owners[first])} at row {first}; sort each user's rows by time (stable)"
        )


def _checked_index(dataset: SequenceDataset, event_index: np.ndarray) -> np.ndarray:
    events = np.asarray(event_index)
    if events.ndim != 1 or not np.issubdtype(events.dtype, np.integer):
        raise ValueError(f"event_index must be a 1-D integer array; got dtype {events.dtype}, shape {events.shape}")
    if len(events) and (events.min() < 0 or events.max() >= dataset.num_interactions):
        raise ValueError(
            f"event_index must lie in [0, {dataset.num_interactions}); got values in [{events.min()}, {events.max()}]"
        )
    return events.astype(np.int64, copy=False)


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
