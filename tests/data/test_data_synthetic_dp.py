"""The Appendix C generator: deterministic, respects the release schedule, few categories, rich get richer."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scaling.config import SyntheticDPConfig
from scaling.data.synthetic_dp import generate_dirichlet_process, released_item_limit

SMALL = SyntheticDPConfig(num_items=2_000, num_categories=40, num_records=3_000, record_length=32)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    first = generate_dirichlet_process(SMALL, seed=7)
    again = generate_dirichlet_process(SMALL, seed=7)
    other = generate_dirichlet_process(SMALL, seed=8)
    assert np.array_equal(first.items, again.items)
    assert np.array_equal(first.item_categories, again.item_categories)
    assert not np.array_equal(first.items, other.items)


def test_release_schedule_matches_the_appendix_example() -> None:
    paper = SyntheticDPConfig(num_items=20_000, num_records=1_000_000, initial_item_fraction=0.4)
    limits = released_item_limit(np.array([0, 500_000, 999_999]), paper)
    assert limits.tolist() == [8_000, 14_000, 19_999]


def test_every_record_uses_only_released_items() -> None:
    stream = generate_dirichlet_process(SMALL, seed=1)
    assert stream.items.min() >= 1
    assert np.all(stream.items <= stream.released_limits[:, None])
    assert np.array_equal(stream.released_limits, released_item_limit(np.arange(SMALL.num_records), SMALL))
    # later records do reach the newly released ids
    assert stream.items[-300:].max() > released_item_limit(np.array([0]), SMALL)[0]


def test_records_draw_from_at_most_max_categories_of_their_own() -> None:
    stream = generate_dirichlet_process(SMALL, seed=2)
    categories = stream.item_categories[stream.items]  # [R, L]
    for record in range(0, SMALL.num_records, 7):
        allowed = set(stream.record_categories[record][stream.record_categories[record] >= 0].tolist())
        used = set(categories[record].tolist())
        assert 1 <= len(allowed) <= SMALL.max_categories_per_record
        assert used <= allowed
    per_record = (stream.record_categories >= 0).sum(axis=1)
    # the number of categories is uniform on 1..max: every value occurs
    assert set(per_record.tolist()) == set(range(1, SMALL.max_categories_per_record + 1))


def test_each_item_is_in_exactly_one_category_assigned_uniformly() -> None:
    stream = generate_dirichlet_process(SyntheticDPConfig(num_items=20_000, num_records=10, record_length=4), seed=3)
    categories = stream.item_categories[1:]
    assert categories.min() >= 0 and categories.max() < 100
    counts = np.bincount(categories, minlength=100)
    assert counts.min() > 120 and counts.max() < 290  # Binomial(20000, 0.01): mean 200, sd 14


def dp_config(alpha: float) -> SyntheticDPConfig:
    return SyntheticDPConfig(
        num_items=5_000, num_categories=50, num_records=6_000, record_length=64, alpha_low=alpha, alpha_high=alpha
    )


def test_later_positions_repeat_earlier_categories() -> None:
    """Rich get richer: position n repeats a seen category with probability >= (n-1)/(alpha+n-1)."""
    alpha = 10.0
    stream = generate_dirichlet_process(dp_config(alpha), seed=4)
    categories = stream.item_categories[stream.items]
    positions = np.array([1, 8, 63])  # 0-based, i.e. n - 1 earlier items
    seen_before = np.array([[row[n] in row[:n] for n in positions] for row in categories]).mean(axis=0)
    assert np.all(seen_before >= positions / (alpha + positions) - 0.03)
    assert seen_before[0] < seen_before[1] < seen_before[2]


@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_second_position_follows_the_polya_urn(alpha: float) -> None:
    """P(c_2 = c_1) = (1 + alpha * E[sum H_c^2]) / (alpha + 1); E[sum H_c^2] = 2/(k+1) for Dirichlet(1^k)."""
    stream = generate_dirichlet_process(dp_config(alpha), seed=11)
    categories = stream.item_categories[stream.items]
    k = np.arange(1, 6)
    collision = np.mean(2 / (k + 1))  # k uniform on 1..5
    expected = (1 + alpha * collision) / (alpha + 1)
    observed = float(np.mean(categories[:, 1] == categories[:, 0]))
    assert abs(observed - expected) < 0.025  # sd ~0.006 with 6,000 records


def test_small_alpha_concentrates_each_record_on_one_category() -> None:
    concentrated = SyntheticDPConfig(
        num_items=2_000, num_categories=20, num_records=2_000, record_length=32, alpha_low=1e-3, alpha_high=1e-3
    )
    diffuse = SyntheticDPConfig(
        num_items=2_000, num_categories=20, num_records=2_000, record_length=32, alpha_low=1e4, alpha_high=1e4
    )

    def top_share(config: SyntheticDPConfig) -> float:
        stream = generate_dirichlet_process(config, seed=5)
        categories = stream.item_categories[stream.items]
        return float(np.mean([np.bincount(row).max() / len(row) for row in categories]))

    assert top_share(concentrated) > 0.99
    assert top_share(diffuse) < 0.8


def test_unreleased_categories_are_never_chosen() -> None:
    # 300 items in 60 categories, 2% released at first: most categories start with nothing released
    config = SyntheticDPConfig(
        num_items=300, num_categories=60, num_records=500, record_length=8, initial_item_fraction=0.02
    )
    stream = generate_dirichlet_process(config, seed=6)
    categories = set(stream.item_categories[1:].tolist())
    first_id = {c: int(np.flatnonzero(stream.item_categories == c).min()) for c in categories}
    for record in range(config.num_records):
        for category in stream.record_categories[record][stream.record_categories[record] >= 0]:
            assert first_id[int(category)] <= stream.released_limits[record]
    assert np.all(stream.items <= stream.released_limits[:, None])


def test_interactions_use_records_as_users_and_a_monotone_clock() -> None:
    stream = generate_dirichlet_process(SMALL, seed=9)
    raw = stream.to_interactions()
    assert raw.users[:SMALL.record_length].tolist() == [0] * SMALL.record_length
    assert np.all(np.diff(raw.timestamps) > 0)
    assert raw.items.tolist()[: SMALL.record_length] == stream.items[0].tolist()


def test_twenty_thousand_records_take_about_a_second() -> None:
    started = time.perf_counter()
    generate_dirichlet_process(SyntheticDPConfig(num_records=20_000, record_length=128), seed=0)
    assert time.perf_counter() - started < 10  # generous bound for slow CI machines; ~0.5 s here


@pytest.mark.parametrize("fraction", [1.0, 1e-6])
def test_extreme_release_fractions(fraction: float) -> None:
    config = SyntheticDPConfig(
        num_items=100, num_categories=10, num_records=50, record_length=5, initial_item_fraction=fraction
    )
    stream = generate_dirichlet_process(config, seed=0)
    assert np.all(stream.items <= stream.released_limits[:, None])
    assert stream.released_limits[0] == (100 if fraction == 1.0 else 1)
