"""The synthetic industrial stream: deterministic, well-formed, and carrying the signals it promises."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scaling.data.synthetic_industrial as industrial
from scaling.config import SyntheticIndustrialConfig, load_run_config
from core.configtools import ConfigError
from scaling.data.features import ImpressionFeaturizer
from scaling.data.loading import load_dataset
from scaling.data.sequences import SequenceDataset
from scaling.data.synthetic_industrial import (
    EVENT_NAMES,
    decode_actions,
    encode_actions,
    generate_synthetic_industrial,
    initial_released_items,
    release_day,
    released_item_limit,
)

SMALL = SyntheticIndustrialConfig(
    num_users=1500,
    num_items=2000,
    num_categories=20,
    mean_events_per_user=60.0,
    max_events_per_user=500,
    time_span_days=120.0,
)
CLICK, LIKE, SHARE, COMPLETE, SKIP = (EVENT_NAMES.index(task) for task in ("click", "like", "share", "complete", "skip"))
# sha256 of SMALL's stream at seed 7, taken before the planted sequence signal existed: with the
# signal off (the default) the generator must draw exactly what it drew then.
SMALL_SEED_7_DIGEST = "9dcb7461fda334cd3d27ddf03a8c377a991016373682802a5f6697e846677362"
# The planted-effect study's sequence_signal_coef (sweeps/planted_effect.yaml).
PLANTED = 0.5


@pytest.fixture(scope="module")
def small() -> SequenceDataset:
    return generate_synthetic_industrial(SMALL, seed=7)


def users_of(dataset: SequenceDataset) -> np.ndarray:
    return np.repeat(np.arange(dataset.num_users), dataset.lengths())


def assert_same_dataset(a: SequenceDataset, b: SequenceDataset) -> None:
    for name in ("item_ids", "timestamps", "offsets", "action_tokens", "labels", "item_categories"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("tokens", "timestamps", "offsets", "token_feature"):
        np.testing.assert_array_equal(getattr(a.contexts, name), getattr(b.contexts, name), err_msg=f"contexts.{name}")
    assert a.fingerprint == b.fingerprint


def test_same_seed_same_stream_other_seed_another(small):
    assert_same_dataset(small, generate_synthetic_industrial(SMALL, seed=7))
    other = generate_synthetic_industrial(SMALL, seed=8)
    assert not np.array_equal(other.item_ids[:1000], small.item_ids[:1000])


def test_shapes_ids_and_chronology(small):
    config, users = SMALL, users_of(small)
    assert small.offsets[0] == 0 and small.offsets[-1] == small.num_interactions == small.item_ids.size
    assert small.num_users == config.num_users and small.num_items == config.num_items
    assert config.min_events_per_user <= small.lengths().min() and small.lengths().max() <= config.max_events_per_user
    assert 1 <= small.item_ids.min() and small.item_ids.max() <= config.num_items
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(small.timestamps)[same_user] >= 0), "timestamps must be non-decreasing per user"
    assert small.timestamps.min() >= 0
    assert small.item_categories.shape == (config.num_items + 1,) and small.item_categories[0] == 0
    assert set(np.unique(small.item_categories[1:])) == set(range(1, config.num_categories + 1))
    assert small.num_categories == config.num_categories


def test_items_appear_only_after_their_release(small):
    limit = released_item_limit(release_day(small.timestamps, SMALL), SMALL)
    assert np.all(small.item_ids <= limit)
    initial = initial_released_items(SMALL)
    assert (small.item_ids > initial).mean() > 0.05, "progressively released items must actually be consumed"


def test_labels_match_action_tokens_and_event_logic(small):
    assert small.task_names == EVENT_NAMES
    assert small.labels.dtype == np.float32 and small.labels.shape == (small.num_interactions, len(EVENT_NAMES))
    assert set(np.unique(small.labels)) <= {0.0, 1.0}
    assert small.num_action_tokens == 2 ** len(EVENT_NAMES)
    assert 1 <= small.action_tokens.min() and small.action_tokens.max() <= small.num_action_tokens
    events = decode_actions(small.action_tokens, len(EVENT_NAMES))
    np.testing.assert_array_equal(events, small.labels.astype(bool))
    click, complete = events[:, CLICK], events[:, COMPLETE]
    assert not np.any(events[:, LIKE] & ~click) and not np.any(events[:, SHARE] & ~click)
    assert not np.any(events[:, SKIP] & (click | complete))
    rates = events.mean(axis=0)
    assert np.all((rates > 0.005) & (rates < 0.6)), f"degenerate positive rates {dict(zip(EVENT_NAMES, rates))}"


def test_contexts_are_compressed_runs_starting_at_the_first_event(small):
    contexts, config = small.contexts, SMALL
    assert contexts.feature_names == ("device", "locale")
    assert contexts.num_tokens == config.num_devices + config.num_locales
    assert contexts.offsets.shape == (small.num_users + 1,) and contexts.offsets[-1] == contexts.tokens.size
    assert 1 <= contexts.tokens.min() and contexts.tokens.max() <= contexts.num_tokens
    feature = contexts.token_feature[contexts.tokens]  # [C] 0 = device, 1 = locale
    assert contexts.token_feature[0] == -1 and set(np.unique(feature)) == {0, 1}
    context_users = np.repeat(np.arange(small.num_users), np.diff(contexts.offsets))
    for name, index in (("device", 0), ("locale", 1)):
        rows = np.flatnonzero(feature == index)
        same_user = context_users[rows][1:] == context_users[rows][:-1]
        assert not np.any(same_user & (contexts.tokens[rows][1:] == contexts.tokens[rows][:-1])), f"uncompressed {name} run"
        assert np.all(np.diff(contexts.timestamps[rows])[same_user] > 0), f"{name} changes must move forward in time"
        first = rows[np.r_[True, ~same_user]]
        np.testing.assert_array_equal(context_users[first], np.arange(small.num_users), err_msg=f"every user starts with a {name}")
        np.testing.assert_array_equal(contexts.timestamps[first], small.timestamps[small.offsets[:-1]])
    assert np.diff(contexts.offsets).mean() < 6, "contexts change slowly: a few entries per user"


def test_fingerprint_names_generator_parameters_seed_and_counts(small):
    fingerprint = small.fingerprint
    assert fingerprint["generator"] == "synthetic-industrial" and fingerprint["seed"] == 7
    assert fingerprint["config"] == dataclasses.asdict(SMALL)
    assert fingerprint["num_users"] == small.num_users and fingerprint["num_events"] == small.num_interactions
    assert fingerprint["num_context_events"] == small.contexts.tokens.size
    rates = small.labels.mean(axis=0)
    assert fingerprint["positive_rates"] == pytest.approx(dict(zip(EVENT_NAMES, rates.tolist())))


def decayed_category_engagement(dataset: SequenceDataset, half_life_days: float) -> np.ndarray:
    """[E] per event: the user's earlier engagements (click or complete) with its category, decayed.

    A plain loop, written apart from the generator's vectorised bookkeeping, as the test's oracle.
    """
    categories = dataset.item_categories[dataset.item_ids]
    engaged = (dataset.labels[:, CLICK] > 0) | (dataset.labels[:, COMPLETE] > 0)
    half_life = half_life_days * 86_400.0
    intensity = np.zeros(dataset.num_interactions)
    for user in range(dataset.num_users):
        state: dict[int, tuple[float, float]] = {}  # category -> (decayed count, as of time)
        for row in range(dataset.offsets[user], dataset.offsets[user + 1]):
            now, category = float(dataset.timestamps[row]), int(categories[row])
            count, since = state.get(category, (0.0, now))
            intensity[row] = count * 2.0 ** (-(now - since) / half_life)
            state[category] = (intensity[row] + float(engaged[row]), now)
    return intensity


def normalized_entropy_of_logistic_fit(features: np.ndarray, labels: np.ndarray) -> float:
    """NE (log loss over the base rate's entropy) of a logistic regression on [E] or [E, F] features, by Newton steps."""
    design = np.column_stack([np.ones(len(labels)), features])
    weights = np.zeros(design.shape[1])
    for _ in range(25):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, design.T @ (p - labels))
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    p = np.clip(1.0 / (1.0 + np.exp(-design @ weights)), 1e-12, 1 - 1e-12)
    log_loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    rate = labels.mean()
    return float(log_loss / -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))


def test_actions_are_predictable_from_recent_category_engagement(small):
    feature = np.log1p(decayed_category_engagement(small, SMALL.intensity_half_life_days))
    for task in ("click", "complete", "skip"):
        index = EVENT_NAMES.index(task)
        ne = normalized_entropy_of_logistic_fit(feature, small.labels[:, index].astype(np.float64))
        oracle = small.fingerprint["oracle_ne"][task]
        # The counter alone beats the base rate clearly; the true probabilities do better still.
        assert ne < 0.95, f"{task}: NE of the intensity counter {ne:.3f} is too close to the base rate"
        assert oracle < ne - 0.05, f"{task}: oracle NE {oracle:.3f} leaves no room beyond the counter ({ne:.3f})"


def stream_digest(dataset: SequenceDataset) -> str:
    """sha256 of every generated array (events, actions, categories, contexts)."""
    digest = hashlib.sha256()
    for array in (dataset.item_ids, dataset.timestamps, dataset.offsets, dataset.action_tokens, dataset.labels,
                  dataset.item_categories, dataset.contexts.tokens, dataset.contexts.timestamps, dataset.contexts.offsets):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_stream_without_the_planted_signal_is_unchanged(small):
    assert SyntheticIndustrialConfig().sequence_signal_coef == 0.0
    assert stream_digest(small) == SMALL_SEED_7_DIGEST


def recent_click_taste(dataset: SequenceDataset, item_traits: np.ndarray) -> np.ndarray:
    """[E] <recent, traits> / sqrt(r) per event, recomputed from the raw (item, click) sequence.

    A plain loop over the module docstring's definition (recent <- lambda recent + sqrt(1 - lambda^2)
    traits at each click, lambda = 1/2), written apart from the generator as the test's oracle.
    """
    decay, dim = 0.5, item_traits.shape[1]
    match = np.zeros(dataset.num_interactions)
    for user in range(dataset.num_users):
        recent = np.zeros(dim)
        for row in range(dataset.offsets[user], dataset.offsets[user + 1]):
            traits = item_traits[dataset.item_ids[row]].astype(np.float64)
            match[row] = recent @ traits / math.sqrt(dim)
            if dataset.labels[row, CLICK] > 0:
                recent = decay * recent + math.sqrt(1 - decay * decay) * traits
    return match


def test_planted_signal_is_the_documented_short_term_taste():
    # Without the intensity term, the signal is the only way earlier actions move the score.
    off = dataclasses.replace(SMALL, num_users=200, intensity_coef=0.0)
    on = dataclasses.replace(off, sequence_signal_coef=PLANTED)
    without, planted = generate_synthetic_industrial(off, seed=5), generate_synthetic_industrial(on, seed=5)
    for name in ("item_ids", "timestamps", "offsets"):  # the signal moves the actions only
        np.testing.assert_array_equal(getattr(without, name), getattr(planted, name), err_msg=name)
    assert not np.array_equal(without.labels, planted.labels)
    item_traits = industrial.build_catalogue(on, industrial._generator(5, industrial._CATALOGUE_STREAM)).item_traits
    click_logit = [np.log(d.oracle_probabilities[:, CLICK]) - np.log1p(-d.oracle_probabilities[:, CLICK])
                   for d in (without, planted)]  # same noise draws, so only the planted term differs
    expected = PLANTED * recent_click_taste(planted, item_traits)
    np.testing.assert_allclose(click_logit[1] - click_logit[0], expected, atol=1e-4)  # float32 probabilities
    assert expected.std() > 0.2, "the planted term must actually vary"


def dense_probe_and_oracle_ne(dataset: SequenceDataset, task: str) -> tuple[float, float]:
    """NE of a logistic regression on every DLRM dense feature, and the oracle NE, of one task."""
    dense = ImpressionFeaturizer(dataset, history_len=1)(np.arange(dataset.num_interactions)).dense.numpy()
    dense = (dense - dense.mean(axis=0)) / np.maximum(dense.std(axis=0), 1e-6)
    labels = dataset.labels[:, EVENT_NAMES.index(task)].astype(np.float64)
    return normalized_entropy_of_logistic_fit(dense.astype(np.float64), labels), dataset.fingerprint["oracle_ne"][task]


def test_planted_signal_is_invisible_to_the_dlrm_counters(small):
    planted = generate_synthetic_industrial(dataclasses.replace(SMALL, sequence_signal_coef=PLANTED), seed=7)
    for task in ("click", "complete", "skip"):
        probe_off, oracle_off = dense_probe_and_oracle_ne(small, task)
        probe_on, oracle_on = dense_probe_and_oracle_ne(planted, task)
        # The true probabilities gain clearly; the counters gain little or nothing, so the room
        # left beyond them (where a sequence model can win) widens.
        assert oracle_on < oracle_off - 0.03, f"{task}: oracle NE {oracle_off:.3f} -> {oracle_on:.3f}"
        assert (probe_on - oracle_on) > (probe_off - oracle_off) + 0.02, (
            f"{task}: oracle-minus-probe gap {probe_off - oracle_off:.3f} -> {probe_on - oracle_on:.3f}")


def test_oracle_probabilities_are_aligned_with_the_labels(small):
    probabilities, labels = small.oracle_probabilities, small.labels
    assert probabilities.dtype == np.float32 and probabilities.shape == labels.shape
    assert np.all((probabilities > 0) & (probabilities < 1))
    # Calibrated event by event: the mean probability matches the rate, and positives score higher.
    np.testing.assert_allclose(probabilities.mean(axis=0), labels.mean(axis=0), rtol=0.05)
    for k, task in enumerate(EVENT_NAMES):
        positive = labels[:, k] > 0
        assert probabilities[positive, k].mean() > probabilities[~positive, k].mean() + 0.02, task


def test_oracle_probabilities_survive_the_cache(tmp_path):
    overrides = ["data.dataset=synthetic-industrial", f"data.cache_dir={tmp_path}", "data.seed=3",
                 "data.synthetic_industrial.num_users=200", "data.synthetic_industrial.num_items=500",
                 "data.synthetic_industrial.num_categories=10", "data.synthetic_industrial.mean_events_per_user=20"]
    config = load_run_config(None, overrides).data
    generated = load_dataset(config)
    assert list((tmp_path / "sequences").glob("synthetic-industrial-*.npz")), "the first load must write the cache"
    cached = load_dataset(config)
    assert cached is not generated
    np.testing.assert_array_equal(cached.oracle_probabilities, generated.oracle_probabilities)
    np.testing.assert_array_equal(cached.labels, generated.labels)


def first_vs_last_quarter_distance(dataset: SequenceDataset, min_length: int = 80) -> float:
    """Mean total-variation distance between the category histograms of a user's first and last quarter."""
    distances = []
    for user in np.flatnonzero(dataset.lengths() >= min_length):
        categories = dataset.item_categories[dataset.item_ids[dataset.offsets[user]:dataset.offsets[user + 1]]]
        quarter = categories.size // 4
        first = np.bincount(categories[:quarter], minlength=dataset.num_categories + 1) / quarter
        last = np.bincount(categories[-quarter:], minlength=dataset.num_categories + 1) / quarter
        distances.append(0.5 * np.abs(first - last).sum())
    return float(np.mean(distances))


def test_interests_drift_over_time(small):
    frozen = dataclasses.replace(SMALL, interest_drift_per_day=0.0, interest_switch_rate_per_day=0.0)
    drifting = first_vs_last_quarter_distance(small)
    static = first_vs_last_quarter_distance(generate_synthetic_industrial(frozen, seed=7))
    # Without drift the two quarters differ only by sampling noise and session stickiness.
    assert drifting > static + 0.1, f"drifting {drifting:.3f} vs frozen interests {static:.3f}"


def test_lengths_are_skewed_and_gaps_form_sessions(small):
    lengths = small.lengths()
    median = np.median(lengths)
    assert lengths.mean() > 1.3 * median and np.percentile(lengths, 99) > 5 * median
    same_user = users_of(small)[1:] == users_of(small)[:-1]
    gaps = np.diff(small.timestamps)[same_user]
    assert np.median(gaps) < 600, "most consecutive events fall within a session (minutes)"
    assert np.mean(gaps > 6 * 3600) > 0.05, "sessions are separated by long breaks (hours to days)"


def test_blocks_join_into_one_valid_dataset(monkeypatch):
    monkeypatch.setattr(industrial, "_USERS_PER_BLOCK", 128)
    config = dataclasses.replace(SMALL, num_users=300, mean_events_per_user=20.0)
    dataset = generate_synthetic_industrial(config, seed=3)
    assert dataset.num_users == 300 and industrial.block_sizes(300) == [128, 128, 44]
    users = users_of(dataset)
    assert np.all(np.diff(dataset.timestamps)[users[1:] == users[:-1]] >= 0)
    context_users = np.repeat(np.arange(300), np.diff(dataset.contexts.offsets))
    np.testing.assert_array_equal(np.unique(context_users), np.arange(300))
    first_context = dataset.contexts.offsets[:-1]
    np.testing.assert_array_equal(dataset.contexts.timestamps[first_context], dataset.timestamps[dataset.offsets[:-1]])
    # Each block's true probabilities land on its own events: they score the labels at the recorded oracle NE.
    probabilities = np.clip(dataset.oracle_probabilities.astype(np.float64), 1e-12, 1 - 1e-12)
    log_loss = -np.mean(np.where(dataset.labels > 0, np.log(probabilities), np.log1p(-probabilities)), axis=0)
    rates = dataset.labels.mean(axis=0)
    np.testing.assert_allclose(log_loss / industrial.binary_entropy(rates),
                               [dataset.fingerprint["oracle_ne"][task] for task in EVENT_NAMES], rtol=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=1, max_size=20))
def test_action_tokens_round_trip(rows):
    labels = np.array(rows, dtype=bool)
    tokens = encode_actions(labels)
    assert tokens.min() >= 1 and tokens.max() <= 32
    np.testing.assert_array_equal(decode_actions(tokens, 5), labels)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.synthetic_industrial.num_items=10", "config key 'data.synthetic_industrial.num_items': must be >= num_categories"),
        ("data.synthetic_industrial.exploration_prob=1.5", "config key 'data.synthetic_industrial.exploration_prob': must be in [0, 1]"),
        ("data.synthetic_industrial.max_events_per_user=2", "config key 'data.synthetic_industrial.max_events_per_user': must be >="),
        ("data.dataset=synthetic-industria", "config key 'data.dataset': must be one of"),
        ("data.synthetic_industrial.sequence_signal_coef=-0.5",
         "config key 'data.synthetic_industrial.sequence_signal_coef': must be a finite number >= 0"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(None, [override])
    assert str(error.value).startswith(message)


def test_dataset_name_is_registered():
    assert load_run_config(None, ["data.dataset=synthetic-industrial"]).data.dataset == "synthetic-industrial"
