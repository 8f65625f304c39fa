"""The compute-efficient frontier keeps exactly the improving evaluations, plus the flat tail's end."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.frontier import Points, compute_frontier, envelope_at, running_best


def _points(pairs: list[tuple[float, float, str]]) -> Points:
    compute, value, trial = zip(*pairs)
    return Points(np.array(compute, dtype=float), np.array(value, dtype=float), np.array(trial, dtype=object))


def test_lower_is_better_keeps_strict_improvements_with_ties_resolved():
    points = _points([
        (1.0, 0.50, "a"), (2.0, 0.60, "a"),  # a gets worse: its second point is dominated
        (2.0, 0.40, "b"), (2.0, 0.45, "c"),  # same compute: only the better value is kept
        (3.0, 0.40, "c"),  # equal value at more compute: not an improvement
        (4.0, 0.30, "b"),
        (0.5, 0.70, "d"),
        (8.0, 0.35, "d"),  # largest compute but worse than the envelope: the tail end
    ])
    frontier = compute_frontier(points, higher_is_better=False)
    assert frontier.kept.compute.tolist() == [0.5, 1.0, 2.0, 4.0]
    assert frontier.kept.value.tolist() == [0.70, 0.50, 0.40, 0.30]
    assert frontier.kept.trial_id.tolist() == ["d", "a", "b", "b"]
    assert frontier.end == 8.0 and frontier.end_trial == "d" and frontier.has_tail
    fitted = frontier.fit_points
    assert fitted.compute.tolist() == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert fitted.value.tolist() == [0.70, 0.50, 0.40, 0.30, 0.30]  # the envelope stays flat to the end
    assert frontier.decades == pytest.approx(np.log10(8.0 / 0.5))


def test_higher_is_better_is_the_upper_envelope_and_equal_values_keep_the_first_row():
    points = _points([(1.0, 0.2, "a"), (1.0, 0.2, "b"), (2.0, 0.1, "a"), (3.0, 0.5, "b"), (3.0, 0.4, "c")])
    frontier = compute_frontier(points, higher_is_better=True)
    assert frontier.kept.compute.tolist() == [1.0, 3.0]
    assert frontier.kept.value.tolist() == [0.2, 0.5]
    assert frontier.kept.trial_id.tolist() == ["a", "b"]
    assert not frontier.has_tail and len(frontier.fit_points) == 2


def test_envelope_is_a_step_function_of_compute():
    frontier = compute_frontier(_points([(1.0, 0.5, "a"), (10.0, 0.3, "b"), (100.0, 0.4, "c")]), False)
    assert np.isnan(envelope_at(frontier, 0.5))
    assert envelope_at(frontier, 1.0) == 0.5
    assert envelope_at(frontier, 9.9) == 0.5
    assert envelope_at(frontier, 50.0) == 0.3
    assert envelope_at(frontier, 1000.0) == 0.3


def test_running_best_along_a_learning_curve():
    assert running_best(np.array([0.5, 0.4, 0.45, 0.3]), False).tolist() == [0.5, 0.4, 0.4, 0.3]
    assert running_best(np.array([0.1, 0.3, 0.2]), True).tolist() == [0.1, 0.3, 0.3]
