"""The compute-efficient frontier: the best metric any trial reached at or below each amount of compute.

Every evaluation of every trial is a point (compute, metric). The frontier is the envelope of those
points, best-so-far along compute: the lower envelope for lower-is-better metrics (NE, loss), the upper
one for higher-is-better metrics (HR, NDCG).

Which points are kept, and fitted:

- every evaluation where the envelope strictly improves: no other evaluation with less or equal
  compute is at least as good. Ties keep one point: at equal compute the better value, at equal value
  the smaller compute (the earlier row when both are equal);
- plus the envelope at the largest compute any evaluation reached, when that is beyond the last
  improvement. A family that stops improving makes no new kept points, so without this end point its
  flat tail would be invisible to the fits and to the saturation verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core import results_schema as schema


@dataclass(frozen=True)
class Points:
    """Evaluations (or frontier points) of one group; arrays of equal length."""

    compute: np.ndarray  # [n] training compute at the evaluation, > 0
    value: np.ndarray  # [n] metric value (metric units, not transformed)
    trial_id: np.ndarray  # [n] trial each point came from

    def __len__(self) -> int:
        return int(self.compute.shape[0])

    def subset(self, mask: np.ndarray) -> "Points":
        return Points(self.compute[mask], self.value[mask], self.trial_id[mask])


def points_from_table(table: pd.DataFrame, metric: str, compute: str) -> Points:
    """The evaluations in ``table`` with a finite ``metric`` and a positive, finite ``compute``."""
    x = table[compute].to_numpy(dtype=float)
    y = table[metric].to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    return Points(x[keep], y[keep], table[schema.TRIAL_ID].to_numpy(dtype=object)[keep])


def running_best(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Best value so far along a curve already ordered by compute (one trial's learning curve)."""
    return np.maximum.accumulate(values) if higher_is_better else np.minimum.accumulate(values)


def frontier_order(compute: np.ndarray, value: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Indices of the frontier's kept points, in increasing compute."""
    score = -value if higher_is_better else value  # lower score is better from here on
    # by compute, then best value first, then table order (np.lexsort is stable; last key is primary)
    order = np.lexsort((score, compute))
    sorted_score = score[order]
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(sorted_score)[:-1]))
    return order[sorted_score < best_before]


@dataclass(frozen=True)
class Frontier:
    """A group's envelope: its improving evaluations and how far in compute the group explored."""

    kept: Points  # evaluations where the envelope strictly improves, by increasing compute
    end: float  # largest compute any evaluation of the group reached
    end_trial: str  # the trial that reached it

    @property
    def has_tail(self) -> bool:
        """Whether the group explored compute beyond its last improvement."""
        return self.end > self.kept.compute[-1]

    @property
    def fit_points(self) -> Points:
        """The kept points plus, when there is a flat tail, the envelope's value at ``end``."""
        if not self.has_tail:
            return self.kept
        return Points(np.append(self.kept.compute, self.end), np.append(self.kept.value, self.kept.value[-1]),
                      np.append(self.kept.trial_id, np.array([self.end_trial], dtype=object)))

    @property
    def decades(self) -> float:
        """log10 span of compute from the first kept point to the end."""
        return float(np.log10(self.end / self.kept.compute[0]))


def compute_frontier(points: Points, higher_is_better: bool) -> Frontier:
    """The envelope of ``points`` (at least one)."""
    kept = points.subset(frontier_order(points.compute, points.value, higher_is_better))
    last = int(np.argmax(points.compute))
    return Frontier(kept, float(points.compute[last]), str(points.trial_id[last]))


def envelope_at(frontier: Frontier, compute: float) -> float:
    """The envelope's value at ``compute``: the last kept point at or below it (NaN before the first)."""
    index = int(np.searchsorted(frontier.kept.compute, compute, side="right")) - 1
    return float(frontier.kept.value[index]) if index >= 0 else float("nan")
