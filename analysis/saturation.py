"""Where a family's frontier stops improving, and the GR-versus-DLRM comparison in words and numbers.

Gain is measured on the frontier (best value reached at or below each compute), in the metric's own
units, positive when the metric gets better. Between two frontier points at least ``min_span`` decades
apart, the gain per decade is the envelope's improvement divided by the decades between them; shorter
stretches are ignored because noise makes their per-decade rate meaningless.

A frontier is *saturated* from the first kept point P, at least ``min_span`` decades before the end of
the explored compute, after which no such stretch gains ``threshold`` or more per decade; or once it
has reached the fitted irreducible term E within E's interval. It is *improving* otherwise, and
*undetermined* when it spans fewer than ``min_span`` decades.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.columns import Metric
from analysis.formatting import decades_text, number, signed
from analysis.forms import to_fit_space
from analysis.frontier import Frontier, envelope_at

WINDOW_DECADES = 1.0
MIN_SPAN_DECADES = 0.5

Verdict = Literal["saturated", "improving", "undetermined"]


@dataclass(frozen=True)
class Saturation:
    verdict: Verdict
    decades: float  # log10 span of the frontier
    trailing_gain: float  # improvement per decade over the last window (metric units, + is better)
    trailing_decades: float  # width of that window (WINDOW_DECADES, or less for a short frontier)
    overall_gain: float  # improvement per decade over the whole frontier
    threshold: float
    saturation_compute: float | None  # compute from which the frontier counts as flat
    saturation_gain: float | None  # largest gain per decade over any stretch after saturation_compute
    reason: str  # one sentence, e.g. "DLRM saturates at 1.2e-03 PF-days: ..."


def improvement(before: float, after: float, metric: Metric) -> float:
    """How much better ``after`` is than ``before`` (positive when the metric improved)."""
    return after - before if metric.higher_is_better else before - after


def signed_change(gain: float, metric: Metric) -> float:
    """A gain expressed as the change of the metric itself (NE falls as it improves)."""
    return (gain if metric.higher_is_better else -gain) + 0.0  # + 0.0 turns -0.0 into 0.0


def steepest_gains(frontier: Frontier, metric: Metric, min_span: float) -> np.ndarray:
    """Per kept point, the largest gain per decade over stretches starting there and >= min_span decades long.

    The envelope is a step function, so over stretches from a point the rate peaks either at exactly
    ``min_span`` decades or at a later kept point (or the end); those are the candidates checked.
    NaN for kept points less than ``min_span`` decades before the end.
    """
    kept, end = frontier.kept, frontier.end
    log_compute = np.log10(kept.compute)
    steepest = np.full(len(kept), np.nan)
    for k in range(len(kept)):
        if np.log10(end) - log_compute[k] < min_span:
            continue
        window_end = kept.compute[k] * 10**min_span
        candidates = [(envelope_at(frontier, window_end), min_span)]
        later = np.flatnonzero(log_compute - log_compute[k] >= min_span)
        candidates += [(kept.value[j], log_compute[j] - log_compute[k]) for j in later]
        candidates.append((kept.value[-1], np.log10(end) - log_compute[k]))
        steepest[k] = max(improvement(kept.value[k], value, metric) / span for value, span in candidates)
    return steepest


def saturation_start(frontier: Frontier, metric: Metric, threshold: float, min_span: float) -> int | None:
    """Index of the first kept point after which no stretch of >= min_span decades gains threshold per decade."""
    steepest = steepest_gains(frontier, metric, min_span)
    eligible = np.flatnonzero(np.isfinite(steepest))
    if eligible.size == 0:
        return None
    steep = eligible[steepest[eligible] >= threshold]
    start = int(steep.max()) + 1 if steep.size else int(eligible[0])
    return start if start <= eligible.max() else None


def assess_saturation(
    frontier: Frontier,
    metric: Metric,
    threshold: float,
    family: str,
    unit: str,
    irreducible: tuple[float, bool] | None = None,
    window: float = WINDOW_DECADES,
    min_span: float = MIN_SPAN_DECADES,
) -> Saturation:
    """Judge one group's frontier; ``irreducible`` is (upper end of E's interval, whether E is identified)."""
    decades, kept = frontier.decades, frontier.kept
    if decades < min_span:
        reason = (f"{family}: frontier spans {decades_text(decades, 2)} of compute (< {min_span:g}); "
                  f"too narrow to judge saturation")
        return Saturation("undetermined", decades, np.nan, decades, np.nan, threshold, None, None, reason)
    c_max = frontier.end
    window_start = max(float(kept.compute[0]), c_max / 10**window)
    trailing_decades = float(np.log10(c_max / window_start))
    trailing = improvement(envelope_at(frontier, window_start), float(kept.value[-1]), metric) / trailing_decades
    overall = improvement(float(kept.value[0]), float(kept.value[-1]), metric) / decades
    start = saturation_start(frontier, metric, threshold, min_span)
    if start is not None:
        at = float(kept.compute[start])
        gain = max(float(np.nanmax(steepest_gains(frontier, metric, min_span)[start:])), 0.0)
        reason = (f"{family} saturates at {number(at, 2)} {unit}: {metric.label} gain per decade at most "
                  f"{number(gain, 2)} < threshold {threshold:g} over the {decades_text(np.log10(c_max / at))} "
                  f"after it")
        return Saturation("saturated", decades, trailing, trailing_decades, overall, threshold, at, gain, reason)
    reached = _irreducible_reached(frontier, metric, irreducible)
    if reached is not None:
        at = float(kept.compute[reached])
        reason = (f"{family} saturates at {number(at, 2)} {unit}: its frontier reached the fitted irreducible term "
                  f"({metric.fit_label} <= {number(irreducible[0], 4)}, the upper end of E's interval)")
        return Saturation("saturated", decades, trailing, trailing_decades, overall, threshold, at, None, reason)
    reason = (f"{family} keeps improving: {metric.label} {signed(signed_change(trailing, metric), 2)} per decade "
              f"over the last {decades_text(trailing_decades)} of a frontier spanning {decades_text(decades)} "
              f"({number(kept.compute[0], 2)} to {number(c_max, 2)} {unit})")
    return Saturation("improving", decades, trailing, trailing_decades, overall, threshold, None, None, reason)


def _irreducible_reached(frontier: Frontier, metric: Metric, irreducible: tuple[float, bool] | None) -> int | None:
    if irreducible is None or not irreducible[1] or not np.isfinite(irreducible[0]):
        return None
    reached = np.flatnonzero(to_fit_space(frontier.kept.value, metric) <= irreducible[0])
    return int(reached[0]) if reached.size else None


def compare_at_common_compute(
    frontiers: dict[str, Frontier], metric: Metric, unit: str
) -> str | None:
    """Which family leads at the ends of the compute range two families share, in one sentence."""
    if len(frontiers) != 2:
        return None
    (name_a, a), (name_b, b) = sorted(frontiers.items())
    low = max(a.kept.compute[0], b.kept.compute[0])
    high = min(a.end, b.end)
    if low > high:
        return (f"{name_a} and {name_b} were run at compute ranges that do not overlap "
                f"({number(a.kept.compute[0], 2)}-{number(a.end, 2)} vs {number(b.kept.compute[0], 2)}-"
                f"{number(b.end, 2)} {unit})")
    parts = [_leader(name_a, a, name_b, b, point, metric, unit) for point in sorted({low, high})]
    return "; ".join(parts)


def _leader(name_a: str, a: Frontier, name_b: str, b: Frontier, compute: float, metric: Metric, unit: str) -> str:
    value_a, value_b = envelope_at(a, compute), envelope_at(b, compute)
    lead = improvement(value_b, value_a, metric)  # > 0: a is better
    if lead == 0:
        return f"at {number(compute, 2)} {unit} {name_a} and {name_b} tie ({metric.label} {number(value_a, 4)})"
    winner, loser = (name_a, name_b) if lead > 0 else (name_b, name_a)
    best, worst = (value_a, value_b) if lead > 0 else (value_b, value_a)
    return (f"at {number(compute, 2)} {unit} {winner} leads ({metric.label} {number(best, 4)} vs {loser} "
            f"{number(worst, 4)}, {number(abs(lead), 2)} better)")
