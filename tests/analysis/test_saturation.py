"""Verdicts: saturated on frontiers that flatten, improving on ones that keep improving, undetermined when fit,
frame and data disagree or are too few; the verdict always reads the form the figure draws."""

from __future__ import annotations

import numpy as np

from analysis.columns import parse_metric
from analysis.frontier import Points, compute_frontier
from analysis.saturation import FittedGain, assess_saturation, compare_at_common_compute
from analysis.study import Options, analyse_group

NE = parse_metric("valid/ne")
HR = parse_metric("valid/hr@100")


def _frontier(compute: np.ndarray, value: np.ndarray, metric) -> object:
    trials = np.array([f"t{i}" for i in range(compute.size)], dtype=object)
    return compute_frontier(Points(compute, value, trials), metric.higher_is_better)


def _study_group(compute: np.ndarray, value: np.ndarray, metric, threshold: float, trials_per_point: int = 1,
                 noise: float = 0.0, seed: int = 0):
    """The full analysis of one group whose evaluations lie on ``value`` (one trial per point, or several with noise)."""
    rng = np.random.default_rng(seed)
    xs = np.repeat(compute, trials_per_point)
    ys = np.repeat(value, trials_per_point) * np.exp(rng.normal(0.0, noise, xs.size))
    trials = np.array([f"t{i}" for i in range(xs.size)], dtype=object)
    options = Options(thresholds={"*": threshold}, bootstrap=60)
    return analyse_group(Points(xs, ys, trials), metric, options, group="X")


def test_flattening_frontier_saturates_and_the_verdict_reads_the_drawn_fit():
    compute = np.logspace(-7, -2, 31)
    ne = 0.6 + 0.05 * (compute / 1e-7) ** -0.8
    group = _study_group(compute, ne, NE, 0.001, trials_per_point=2, noise=1e-4)
    assert group.saturation.verdict == "saturated"
    assert group.primary == "saturating" and group.fitted_gain.high < 0.001
    assert 1e-7 <= group.saturation.saturation_compute <= 1e-4  # where the fitted law's gain falls below 0.001
    assert group.saturation.reason.startswith("X saturates: fitted NE change")


def test_power_law_frontier_keeps_improving():
    compute = np.logspace(-7, -2, 31)
    ne = 0.25 * (compute / 1e-7) ** -0.05
    group = _study_group(compute, ne, NE, 0.001, trials_per_point=2, noise=1e-4)
    assert group.saturation.verdict == "improving"
    assert group.fitted_gain.low >= 0.001 and group.saturation.trailing_gain >= 0.001
    assert group.saturation.reason.startswith("X keeps improving: fitted NE change -0.0")


def test_threshold_decides():
    compute = np.logspace(-6, -2, 21)
    hr = 0.3 + 0.02 * np.log10(compute / 1e-6)  # a steady +0.02 HR per decade
    assert _study_group(compute, hr, HR, 0.005, 2, 1e-4).saturation.verdict == "improving"
    assert _study_group(compute, hr, HR, 0.05, 2, 1e-4).saturation.verdict == "saturated"


def _fitted(estimate: float, low: float, high: float, rivals=()) -> FittedGain:
    return FittedGain("pure power law", estimate, low, high, None, rivals)


def _steady(per_decade: float):
    compute = np.logspace(-6, -2, 21)
    return _frontier(compute, 0.6 - per_decade * np.log10(compute / 1e-6), NE)


def test_an_interval_straddling_the_threshold_is_undetermined():
    saturation = assess_saturation(_steady(0.002), NE, 0.001, "X", "PF-days", _fitted(0.002, 0.0005, 0.004))
    assert saturation.verdict == "undetermined" and "straddles the threshold" in saturation.reason


def test_no_interval_is_undetermined():
    saturation = assess_saturation(_steady(0.002), NE, 0.001, "X", "PF-days", _fitted(0.002, np.nan, np.nan))
    assert saturation.verdict == "undetermined" and "no trustworthy interval" in saturation.reason


def test_a_fit_that_its_own_frontier_contradicts_is_undetermined():
    slow = _steady(0.0005)  # the frontier gains half the threshold per decade, but the fit claims a steep gain
    saturation = assess_saturation(slow, NE, 0.001, "X", "PF-days", _fitted(0.01, 0.008, 0.012))
    assert saturation.verdict == "undetermined" and "the frontier itself changed" in saturation.reason
    agreeing = assess_saturation(_steady(0.01), NE, 0.001, "X", "PF-days", _fitted(0.01, 0.008, 0.012))
    assert agreeing.verdict == "improving"


def test_a_fit_that_improves_past_a_stalled_frontier_is_undetermined():
    compute = np.logspace(-6, -2, 21)
    ne = np.maximum(0.6 - 0.01 * np.log10(compute / 1e-6), 0.6 - 0.01 * 3.2)  # no new point after 1.6e-3
    saturation = assess_saturation(_frontier(compute, ne, NE), NE, 0.001, "X", "PF-days", _fitted(0.01, 0.008, 0.012))
    assert saturation.verdict == "undetermined" and "has not improved over its last 0.8 decades" in saturation.reason


def test_indistinguishable_forms_that_disagree_leave_it_undetermined():
    rivals = (("power law + irreducible term", 0.0002, 0.8),)
    saturation = assess_saturation(_steady(0.01), NE, 0.001, "X", "PF-days", _fitted(0.01, 0.008, 0.012, rivals))
    assert saturation.verdict == "undetermined" and "cannot tell" in saturation.reason


def test_narrow_frontier_is_undetermined():
    compute = np.logspace(-6, -5.7, 5)
    saturation = assess_saturation(_frontier(compute, 0.6 - compute, NE), NE, 0.001, "DLRM", "PF-days",
                                   _fitted(0.01, 0.008, 0.012))
    assert saturation.verdict == "undetermined"
    assert "spans 0.30 decades" in saturation.reason


def test_too_few_frontier_points_select_no_form_and_no_verdict():
    compute = np.logspace(-6, -4, 3)
    group = _study_group(compute, 0.6 - 0.01 * np.log10(compute / 1e-6), NE, 0.001)
    assert group.primary is None and group.fitted_gain is None
    assert group.saturation.verdict == "undetermined" and "too few frontier points" in group.saturation.reason


def test_comparison_names_the_leader_at_both_ends_of_the_shared_range():
    compute = np.logspace(-7, -2, 31)
    frontiers = {
        "GR": _frontier(compute, 0.45 + 0.25 * (compute / 1e-7) ** -0.2, NE),
        "DLRM": _frontier(compute, 0.60 + 0.05 * (compute / 1e-7) ** -0.8, NE),
    }
    sentence = compare_at_common_compute(frontiers, NE, "PF-days")
    low, high = sentence.split("; ")
    assert "DLRM leads" in low and "GR leads" in high
