"""Saturation is found on frontiers that flatten, not on ones that keep improving, and never on too little data."""

from __future__ import annotations

import numpy as np

from analysis.columns import parse_metric
from analysis.frontier import Points, compute_frontier
from analysis.saturation import assess_saturation, compare_at_common_compute

NE = parse_metric("valid/ne")
HR = parse_metric("valid/hr@100")


def _frontier(compute: np.ndarray, value: np.ndarray, metric) -> object:
    trials = np.array([f"t{i}" for i in range(compute.size)], dtype=object)
    return compute_frontier(Points(compute, value, trials), metric.higher_is_better)


def test_flattening_frontier_saturates_where_it_flattens():
    compute = np.logspace(-7, -2, 31)
    ne = 0.6 + 0.05 * (compute / 1e-7) ** -0.8 + np.linspace(0, 1e-6, 31)  # tiny drift: flat tail, no new points
    saturation = assess_saturation(_frontier(compute, ne, NE), NE, threshold=0.001, family="DLRM", unit="PF-days")
    assert saturation.verdict == "saturated"
    assert 1e-6 <= saturation.saturation_compute <= 1e-4
    assert saturation.saturation_gain < 0.001
    assert saturation.reason.startswith("DLRM saturates at")
    assert "< threshold 0.001" in saturation.reason


def test_power_law_frontier_keeps_improving():
    compute = np.logspace(-7, -2, 31)
    ne = 0.45 + 0.25 * (compute / 1e-7) ** -0.2
    saturation = assess_saturation(_frontier(compute, ne, NE), NE, threshold=0.001, family="GR", unit="PF-days")
    assert saturation.verdict == "improving"
    assert saturation.saturation_compute is None
    assert saturation.trailing_gain > 0.005  # NE still falls by more than 0.005 per decade at the end
    assert saturation.reason.startswith("GR keeps improving: NE -0.0")


def test_higher_is_better_metric_uses_the_upper_envelope():
    compute = np.logspace(-6, -2, 21)
    rising = 0.3 + 0.02 * np.log10(compute / 1e-6)
    flat = np.minimum(rising, 0.34)
    assert assess_saturation(_frontier(compute, rising, HR), HR, 0.005, "GR", "PF-days").verdict == "improving"
    flat_verdict = assess_saturation(_frontier(compute, flat, HR), HR, 0.005, "DLRM", "PF-days")
    assert flat_verdict.verdict == "saturated"
    kink = compute[np.argmax(flat >= 0.34)]
    assert kink / 10**0.25 <= flat_verdict.saturation_compute <= kink  # within one grid step of the kink


def test_threshold_decides():
    compute = np.logspace(-6, -2, 21)
    ne = 0.6 - 0.002 * np.log10(compute / 1e-6)  # a steady 0.002 per decade
    frontier = _frontier(compute, ne, NE)
    assert assess_saturation(frontier, NE, 0.001, "X", "PF-days").verdict == "improving"
    assert assess_saturation(frontier, NE, 0.003, "X", "PF-days").verdict == "saturated"


def test_narrow_frontier_is_undetermined():
    compute = np.logspace(-6, -5.7, 5)
    saturation = assess_saturation(_frontier(compute, 0.6 - compute, NE), NE, 0.001, "DLRM", "PF-days")
    assert saturation.verdict == "undetermined"
    assert "too narrow" in saturation.reason


def test_reaching_the_fitted_irreducible_term_counts_as_saturation():
    compute = np.logspace(-6, -2, 21)
    ne = 0.6 - 0.002 * np.log10(compute / 1e-6)  # still above the threshold's pace ...
    frontier = _frontier(compute, ne, NE)
    reached = assess_saturation(frontier, NE, 0.001, "X", "PF-days", irreducible=(0.593, True))
    assert reached.verdict == "saturated" and "irreducible" in reached.reason
    # ... but an unidentified E is not evidence of anything
    assert assess_saturation(frontier, NE, 0.001, "X", "PF-days", irreducible=(0.593, False)).verdict == "improving"


def test_comparison_names_the_leader_at_both_ends_of_the_shared_range():
    compute = np.logspace(-7, -2, 31)
    frontiers = {
        "GR": _frontier(compute, 0.45 + 0.25 * (compute / 1e-7) ** -0.2, NE),
        "DLRM": _frontier(compute, 0.60 + 0.05 * (compute / 1e-7) ** -0.8, NE),
    }
    sentence = compare_at_common_compute(frontiers, NE, "PF-days")
    low, high = sentence.split("; ")
    assert "DLRM leads" in low and "GR leads" in high
