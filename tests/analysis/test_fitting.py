"""The fitters recover known laws from noisy synthetic data, inside their bootstrap intervals, and say when they cannot."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.blas import single_threaded_blas
from analysis.bootstrap import bootstrap, intervals
from analysis.columns import parse_metric
from analysis.forms import fit_form, fit_problem
from analysis.frontier import Points

NE = parse_metric("valid/ne")
HR = parse_metric("valid/hr@100")


def _one_point_per_trial(compute: np.ndarray, value: np.ndarray) -> Points:
    return Points(compute, value, np.array([f"t{i}" for i in range(compute.size)], dtype=object))


def _fit_with_intervals(points: Points, metric, form, replicates=60, seed=0):
    with single_threaded_blas():
        full = fit_form(form, points.compute, points.value, metric)
        draws = bootstrap(points, metric, {form: full}, replicates, seed, use_frontier=False)
    return full, intervals(draws[form], full, len(np.unique(points.trial_id)), 0.95)


def test_saturating_power_law_recovered_inside_its_intervals():
    rng = np.random.default_rng(7)
    truth = {"E": 0.30, "A": 0.0079, "alpha": 0.30}
    compute = np.logspace(-6, -2, 16)  # PF-days, four decades
    clean = truth["E"] + truth["A"] * compute ** -truth["alpha"]
    value = clean * np.exp(rng.normal(0.0, 0.01, compute.size))
    full, found = _fit_with_intervals(_one_point_per_trial(compute, value), NE, "saturating")
    for name, true_value in truth.items():
        interval = found[name]
        assert interval.identified, (name, interval)
        assert interval.low <= true_value <= interval.high, (name, interval, true_value)
        assert interval.low <= full.params[name] <= interval.high
    assert full.params["alpha"] == pytest.approx(truth["alpha"], rel=0.25)
    assert full.params["E"] == pytest.approx(truth["E"], rel=0.1)


def test_pure_power_law_recovered_on_a_score_error():
    # HR@100 whose error 1 - HR falls as 0.8 C^-0.1: the power law is fitted to 1 - HR
    rng = np.random.default_rng(3)
    compute = np.logspace(-5, -1, 12)
    hr = 1.0 - 0.8 * compute ** -0.1 * np.exp(rng.normal(0.0, 0.005, compute.size)) * 0.5
    full, found = _fit_with_intervals(_one_point_per_trial(compute, hr), HR, "power")
    assert full.params["alpha"] == pytest.approx(0.1, abs=0.01)
    assert found["alpha"].low <= 0.1 <= found["alpha"].high
    assert found["A"].low <= 0.4 <= found["A"].high


def test_irreducible_term_flagged_when_data_cannot_pin_it():
    # a pure power law (E = 0) over two decades: E piles up on its lower bound
    rng = np.random.default_rng(11)
    compute = np.logspace(-6, -4, 8)
    value = 0.02 * compute ** -0.2 * np.exp(rng.normal(0.0, 0.01, compute.size))
    _, found = _fit_with_intervals(_one_point_per_trial(compute, value), NE, "saturating")
    assert not found["E"].identified
    assert "E = 0" in found["E"].note


def test_log_linear_recovers_its_slope():
    rng = np.random.default_rng(5)
    compute = np.logspace(-4, 0, 20)
    hr = 0.40 + 0.012 * np.log(compute) + rng.normal(0.0, 0.002, compute.size)
    full, found = _fit_with_intervals(_one_point_per_trial(compute, hr), HR, "loglinear")
    assert full.params["b"] == pytest.approx(0.012, abs=0.001)
    assert found["b"].low <= 0.012 <= found["b"].high
    assert found["a"].low <= 0.40 <= found["a"].high


def test_huber_loss_shrugs_off_one_broken_evaluation():
    compute = np.logspace(-6, -2, 12)
    clean = 0.5 + 0.01 * compute ** -0.25
    broken = clean.copy()
    broken[5] *= 1.5  # one evaluation 50% off
    with single_threaded_blas():
        fit = fit_form("saturating", compute, broken, NE)
    assert fit.params["alpha"] == pytest.approx(0.25, rel=0.05)
    assert fit.params["E"] == pytest.approx(0.5, rel=0.02)


def test_too_few_points_is_reported_not_fitted():
    compute, value = np.array([1e-6, 1e-5, 1e-4]), np.array([0.7, 0.6, 0.55])
    assert "not identifiable" in fit_problem("saturating", compute, value, NE)
    assert fit_problem("power", compute, value, NE) is None
    assert "not applicable" in fit_problem("power", compute, np.array([0.5, 0.9, 1.0]), HR)


def test_five_points_leave_too_many_resamples_unfittable():
    compute = np.logspace(-6, -4, 5)
    _, found = _fit_with_intervals(_one_point_per_trial(compute, 0.02 * compute ** -0.2), NE, "saturating")
    assert not any(interval.identified for interval in found.values())
    assert "resamples" in found["E"].note


def test_few_trials_give_no_interval_rather_than_a_fake_one():
    compute = np.logspace(-6, -3, 8)
    value = 0.5 + 0.01 * compute ** -0.2
    points = Points(compute, value, np.array(["a"] * 4 + ["b"] * 4, dtype=object))
    _, found = _fit_with_intervals(points, NE, "power", replicates=10)
    assert not found["alpha"].identified
    assert "only 2 trial(s)" in found["alpha"].note
