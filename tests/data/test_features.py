"""DLRM impression features: equal a per-impression reference and never read the future."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaling.data.features import (
    DenseStandardizer,
    ImpressionFeaturizer,
    dense_feature_names,
    feature_spec,
    impression_features,
    impression_labels,
)
from scaling.data.sequences import ContextEvents, SequenceDataset

WINDOWS = (3, 10)  # seconds; the tiny clocks below make windows, ties and gaps all matter
PRIOR = 2.0
HISTORY = 3


def dataset_from(
    users: list[list[tuple[int, int, int, int, int]]],
    item_categories: list[int],
    contexts: list[list[tuple[int, int]]] | None = None,
) -> SequenceDataset:
    """users[u] = [(timestamp, item, click, like, action), ...] chronological; contexts[u] = [(time, token)]."""
    rows = [row for events in users for row in events]
    offsets = np.concatenate([[0], np.cumsum([len(events) for events in users])]).astype(np.int64)
    column = lambda k, dtype=np.int64: np.array([row[k] for row in rows], dtype=dtype).reshape(len(rows))  # noqa: E731
    context_events = None
    if contexts is not None:
        flat = [c for per_user in contexts for c in per_user]
        context_events = ContextEvents(
            tokens=np.array([token for _, token in flat], dtype=np.int64),
            timestamps=np.array([time for time, _ in flat], dtype=np.int64),
            offsets=np.concatenate([[0], np.cumsum([len(c) for c in contexts])]).astype(np.int64),
            num_tokens=4,
            feature_names=("device", "locale"),
            token_feature=np.array([0, 0, 0, 1, 1]),  # tokens 1-2 are devices, 3-4 locales
        )
    return SequenceDataset(
        item_ids=column(1),
        timestamps=column(0),
        offsets=offsets,
        num_items=len(item_categories) - 1,
        action_tokens=column(4),
        num_action_tokens=3,
        labels=np.stack([column(2, np.float32), column(3, np.float32)], axis=1).reshape(len(rows), 2),
        task_names=("click", "like"),
        item_categories=np.array(item_categories, dtype=np.int64),
        num_categories=max(item_categories),
        contexts=context_events,
    )


def reference_features(dataset: SequenceDataset, e: int) -> dict[str, object]:
    """The features of impression e written out from their definitions, one event at a time."""
    users = np.repeat(np.arange(dataset.num_users), np.diff(dataset.offsets))
    u, t = users[e], dataset.timestamps[e]
    cats = dataset.item_categories[dataset.item_ids]
    earlier = list(range(dataset.offsets[u], e))  # the user's events strictly before e in sequence
    before_t = [j for j in range(dataset.num_interactions) if dataset.timestamps[j] < t]  # global: strictly earlier time
    labels = dataset.labels.astype(np.float64)

    def total(rows: list[int]) -> np.ndarray:
        return labels[rows].sum(axis=0) if rows else np.zeros(2)

    def smooth(rows: list[int], prior: np.ndarray) -> np.ndarray:
        return (total(rows) + PRIOR * prior) / (len(rows) + PRIOR)

    global_rate = (total(before_t) + 1) / (len(before_t) + 2)
    user_rate = smooth(earlier, global_rate)
    same_category = [j for j in earlier if cats[j] == cats[e]]
    item_rows = [j for j in before_t if dataset.item_ids[j] == dataset.item_ids[e]]
    category_rows = [j for j in before_t if cats[j] == cats[e]]
    log_gap = lambda rows: math.log1p(t - dataset.timestamps[rows[-1]]) if rows else 0.0  # noqa: E731
    dense = [math.log1p(len(earlier))]
    dense += [math.log1p(sum(dataset.timestamps[j] > t - w for j in earlier)) for w in WINDOWS]
    dense += [float(bool(earlier)), log_gap(earlier), *user_rate, *global_rate]
    dense += [math.log1p(len(item_rows)), *smooth(item_rows, global_rate)]
    dense += [math.log1p(len(same_category)), len(same_category) / max(len(earlier), 1), float(bool(same_category))]
    dense += [log_gap(same_category), *smooth(same_category, user_rate)]
    dense += [math.log1p(len(category_rows)), *smooth(category_rows, global_rate)]
    history = earlier[-HISTORY:]
    pad = [0] * (HISTORY - len(history))
    sparse = []
    if dataset.contexts is not None:
        c = dataset.contexts
        rows = range(c.offsets[u], c.offsets[u + 1])
        for tokens in ((1, 2), (3, 4)):  # local id = position inside the feature's own vocabulary
            seen = [c.tokens[r] for r in rows if c.timestamps[r] <= t and c.tokens[r] in tokens]
            sparse.append(tokens.index(seen[-1]) + 1 if seen else 0)
    return {
        "dense": np.array(dense),
        "sparse": sparse,
        "history_item_ids": pad + [int(dataset.item_ids[j]) for j in history],
        "history_actions": pad + [int(dataset.action_tokens[j]) for j in history],
        "target_item_ids": int(dataset.item_ids[e]),
        "target_categories": int(cats[e]),
    }


def featurize(dataset: SequenceDataset, events: np.ndarray):
    return ImpressionFeaturizer(dataset, HISTORY, WINDOWS, PRIOR)(np.asarray(events, dtype=np.int64))


def assert_matches_reference(dataset: SequenceDataset) -> None:
    got = featurize(dataset, np.arange(dataset.num_interactions))
    for e in range(dataset.num_interactions):
        want = reference_features(dataset, e)
        np.testing.assert_allclose(got.dense[e].numpy(), want["dense"], rtol=1e-5, atol=1e-6, err_msg=f"event {e}")
        for name in ("sparse", "history_item_ids", "history_actions", "target_item_ids", "target_categories"):
            assert getattr(got, name)[e].tolist() == want[name], f"{name} of event {e}"


@st.composite
def small_datasets(draw: st.DrawFn) -> SequenceDataset:
    """1-4 users, 1-7 events each on a clock of 0..20 s (many ties), 5 items in 3 categories."""
    num_users = draw(st.integers(1, 4))
    event = st.tuples(st.integers(0, 20), st.integers(1, 5), st.integers(0, 1), st.integers(0, 1), st.integers(1, 3))
    users = [sorted(draw(st.lists(event, min_size=1, max_size=7)), key=lambda row: row[0]) for _ in range(num_users)]
    contexts = [sorted(draw(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 4)), max_size=4))) for _ in range(num_users)]
    return dataset_from(users, [0, 1, 1, 2, 3, 3], contexts)


def test_hand_computed_example():
    # user 0: three events; user 1 has one event at t=5, simultaneous with user 0's second.
    dataset = dataset_from(
        [[(0, 1, 1, 0, 2), (5, 2, 0, 0, 1), (5, 1, 1, 1, 3)], [(5, 3, 1, 1, 2)]],
        item_categories=[0, 1, 1, 2],
    )
    got = featurize(dataset, np.array([2]))
    names = dense_feature_names(dataset, WINDOWS)
    row = dict(zip(names, got.dense[0].tolist()))
    # Impression = user 0's third event (item 1, t=5). Its user history is both earlier events,
    # including the one at the same timestamp (earlier in the sequence).
    assert row["user_log_events"] == pytest.approx(math.log1p(2))
    assert row["user_log_events_3s"] == pytest.approx(math.log1p(1))  # only t=5 lies in (2, 5]
    assert row["user_log_seconds_since_last"] == pytest.approx(0.0)
    # Global statistics see only t < 5: the first event (click=1, like=0).
    assert row["global_rate_click"] == pytest.approx((1 + 1) / (1 + 2))
    assert row["global_rate_like"] == pytest.approx((0 + 1) / (1 + 2))
    assert row["user_rate_click"] == pytest.approx((1 + PRIOR * 2 / 3) / (2 + PRIOR))
    assert row["item_log_events"] == pytest.approx(math.log1p(1))  # item 1 at t=0; not user 1's item 3
    assert row["category_log_events"] == pytest.approx(math.log1p(1))  # items 1, 2 share category 1; t=5 excluded
    assert row["user_category_log_events"] == pytest.approx(math.log1p(2))
    assert row["user_category_share"] == pytest.approx(1.0)
    assert got.history_item_ids[0].tolist() == [0, 1, 2] and got.history_actions[0].tolist() == [0, 2, 1]
    assert got.sparse.shape == (1, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_datasets())
def test_vectorised_features_equal_the_per_impression_reference(dataset):
    assert_matches_reference(dataset)


def perturb_after(dataset: SequenceDataset, e: int, rng: np.random.Generator) -> tuple[SequenceDataset, int]:
    """Change or delete what e may not see: its own labels and action, its user's later events,
    other users' events at t >= t_e, context events after t_e. Returns the dataset and e's new index."""
    users = np.repeat(np.arange(dataset.num_users), np.diff(dataset.offsets))
    u, t = users[e], dataset.timestamps[e]
    rows = np.arange(dataset.num_interactions)
    future = ((users == u) & (rows > e)) | ((users != u) & (dataset.timestamps >= t))
    items, labels, actions, stamps = (dataset.item_ids.copy(), dataset.labels.copy(),
                                      dataset.action_tokens.copy(), dataset.timestamps.copy())
    changed = future & (rng.random(len(rows)) < 0.7)
    items[changed] = rng.integers(1, dataset.num_items + 1, changed.sum())
    labels[changed] = rng.integers(0, 2, (changed.sum(), labels.shape[1]))
    actions[changed] = rng.integers(1, 4, changed.sum())
    labels[e] = 1 - labels[e]  # the impression's own outcome
    actions[e] = actions[e] % 3 + 1
    for v in np.unique(users[future]):  # push future events later, keeping each user's order
        first = rows[future & (users == v)].min()
        stamps[first:dataset.offsets[v + 1]] += int(rng.integers(0, 4))
    keep = ~(future & (rng.random(len(rows)) < 0.3))
    lengths = np.bincount(users[keep], minlength=dataset.num_users)
    contexts = dataset.contexts
    if contexts is not None:
        context_users = np.repeat(np.arange(dataset.num_users), np.diff(contexts.offsets))
        late = contexts.timestamps > t
        tokens = np.where(late & (rng.random(len(late)) < 0.5), rng.integers(1, 5, len(late)), contexts.tokens)
        keep_context = ~(late & (rng.random(len(late)) < 0.3))
        contexts = replace(
            contexts, tokens=tokens[keep_context], timestamps=contexts.timestamps[keep_context],
            offsets=np.concatenate([[0], np.cumsum(np.bincount(context_users[keep_context], minlength=dataset.num_users))]),
        )
    perturbed = replace(
        dataset, item_ids=items[keep], labels=labels[keep], action_tokens=actions[keep], timestamps=stamps[keep],
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), contexts=contexts,
    )
    return perturbed, int(np.cumsum(keep)[e] - 1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_datasets(), st.integers(0, 10**6), st.integers(0, 2**32 - 1))
def test_nothing_at_or_after_the_impression_changes_its_features(dataset, which, seed):
    e = which % dataset.num_interactions
    perturbed, new_e = perturb_after(dataset, e, np.random.default_rng(seed))
    before, after = featurize(dataset, np.array([e])), featurize(perturbed, np.array([new_e]))
    for name in ("dense", "sparse", "history_item_ids", "history_actions", "target_item_ids", "target_categories"):
        torch.testing.assert_close(getattr(before, name), getattr(after, name), rtol=0, atol=0, msg=name)


def test_earlier_events_do_move_the_features():
    """The causality property is not vacuous: an earlier label changes rates, an earlier context token the sparse column."""
    dataset = dataset_from(
        [[(0, 1, 1, 0, 2), (4, 2, 0, 0, 1), (9, 1, 1, 1, 3)]], [0, 1, 1, 2], contexts=[[(0, 1), (3, 4)]]
    )
    base = featurize(dataset, np.array([2]))
    flipped = featurize(replace(dataset, labels=np.array([[0, 0], [0, 0], [1, 1]], np.float32)), np.array([2]))
    assert not torch.equal(base.dense, flipped.dense)
    assert base.sparse.tolist() == [[1, 2]]  # device token 1 (local 1), locale token 4 (local 2)


def test_spec_matches_the_emitted_features():
    dataset = dataset_from([[(0, 1, 1, 0, 2), (5, 2, 0, 1, 1)]], [0, 1, 2], contexts=[[(0, 2)]])
    spec = feature_spec(dataset, HISTORY, WINDOWS, include_user_id=True)
    features = impression_features(dataset, np.array([0, 1]), HISTORY, WINDOWS, include_user_id=True)
    assert features.dense.shape == (2, spec.num_dense) and features.dense.dtype == torch.float32
    assert spec.sparse_vocab_sizes == (3, 3, 2)  # two devices, two locales, one user (+ padding each)
    assert features.sparse.shape == (2, spec.num_sparse)
    assert all(int(features.sparse[:, s].max()) < size for s, size in enumerate(spec.sparse_vocab_sizes))
    assert features.history_item_ids.shape == (2, HISTORY) and spec.num_tasks == 2
    assert impression_labels(dataset, np.array([1])).tolist() == [[0.0, 1.0]]


def test_standardizer_is_fit_on_one_split_and_applied_to_another():
    dataset = dataset_from([[(i, 1 + i % 2, i % 2, 0, 1) for i in range(6)]], [0, 1, 2])
    features = featurize(dataset, np.arange(6))
    standardize = DenseStandardizer.fit(features.dense[:4])
    train = standardize(replace(features, dense=features.dense[:4]))
    assert train.dense.mean(0).abs().max() < 1e-5
    assert standardize(features).dense.shape == features.dense.shape


def test_bad_inputs_are_rejected_with_a_fix():
    dataset = dataset_from([[(0, 1, 1, 0, 2), (5, 2, 0, 1, 1)]], [0, 1, 2])
    with pytest.raises(ValueError, match="must lie in"):
        featurize(dataset, np.array([2]))
    with pytest.raises(ValueError, match="sort each user's rows"):
        ImpressionFeaturizer(replace(dataset, timestamps=np.array([5, 0])), HISTORY)
    with pytest.raises(ValueError, match="need SequenceDataset.labels"):
        ImpressionFeaturizer(replace(dataset, labels=None), HISTORY)
    with pytest.raises(ValueError, match="set num_categories to the largest category id"):
        ImpressionFeaturizer(replace(dataset, num_categories=1), HISTORY)


def test_a_hundred_thousand_impressions_are_featurised_without_python_loops():
    rng = np.random.default_rng(0)
    num_users, per_user = 5_000, 20
    events = num_users * per_user
    dataset = SequenceDataset(
        item_ids=rng.integers(1, 1001, events),
        timestamps=np.sort(rng.integers(0, 10**7, (num_users, per_user)), axis=1).reshape(-1),
        offsets=np.arange(0, events + 1, per_user),
        num_items=1000,
        action_tokens=rng.integers(1, 4, events),
        num_action_tokens=3,
        labels=rng.integers(0, 2, (events, 2)).astype(np.float32),
        item_categories=np.concatenate([[0], rng.integers(1, 21, 1000)]),
        num_categories=20,
    )
    import time

    started = time.perf_counter()
    features = ImpressionFeaturizer(dataset, 20)(np.arange(events))
    assert features.dense.shape[0] == events and torch.isfinite(features.dense).all()
    assert time.perf_counter() - started < 20  # a per-impression Python loop takes minutes here


@pytest.mark.parametrize("order", ["shuffle", "time"])
def test_impression_batches_featurised_in_blocks_equal_batches_featurised_alone(order, monkeypatch):
    from dataclasses import fields

    import scaling.data.impressions as impressions
    from scaling.data.actions import with_rating_actions

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 30, size=20)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    stamps = np.concatenate([np.sort(rng.integers(0, 1000, size=n)) for n in lengths])
    dataset = with_rating_actions(SequenceDataset(rng.integers(1, 51, offsets[-1]), stamps, offsets, num_items=50,
                                                  ratings=rng.integers(1, 6, offsets[-1]).astype(np.float32)))
    batcher = impressions.ImpressionBatcher(dataset, history_len=4)
    events = np.arange(dataset.num_interactions)
    batcher.fit_standardizer(events, rng)
    chunks = batcher.chunks(events)
    monkeypatch.setattr(impressions, "FEATURIZE_BLOCK", 7 * 16 + 5)  # blocks of 7 batches, the last one short
    batches = list(batcher.batches(chunks, 16, order, np.random.default_rng(1)))
    visited = impressions.visiting_order(chunks.time, order, np.random.default_rng(1))
    assert len(batches) == -(-len(events) // 16)
    for k, batch in enumerate(batches):
        alone = batcher.batch(chunks.events[visited[16 * k : 16 * (k + 1)]])
        assert torch.equal(batch.target_events, alone.target_events) and torch.equal(batch.labels, alone.labels)
        for field in fields(alone.features):
            assert torch.equal(getattr(batch.features, field.name), getattr(alone.features, field.name)), field.name
