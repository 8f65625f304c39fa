"""Whether a family keeps improving with compute: one verdict that its fit and its frontier both support.

The verdict is read off the *selected* fitted form, the very line the figure draws (``analysis.study``
selects it by AICc): its gain per decade at the end of the explored compute, with its bootstrap
interval, against a threshold (the paper's "significant improvement" per decade):

- *improving* when the whole interval is at or above the threshold;
- *saturated* when the whole interval is below it;
- *undetermined* when the interval straddles it, when there is no trustworthy interval, when the
  frontier spans less than ``min_span`` decades or has too few points to select a form, when forms
  the data cannot tell apart (AICc within 2) disagree, or when the frontier itself contradicts the
  fitted line: its own recent change (the envelope's gain over its last ``window`` decades, no fit
  involved) is on the other side of the threshold, or the fit says improving while the frontier
  has made no new point over its last ``min_span`` decades. Each reason is said in words, with
  the numbers.

So the sentence, the drawn line and the fitted gain per decade never contradict each other: where
they would, the verdict says that the data cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.columns import Metric
from analysis.formatting import decades_text, number, signed
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
    saturation_compute: float | None  # saturated: compute from which the selected form gains < threshold per decade
    reason: str  # one sentence with the numbers, e.g. "DLRM saturates: fitted NE change ..."


def improvement(before: float, after: float, metric: Metric) -> float:
    """How much better ``after`` is than ``before`` (positive when the metric improved)."""
    return after - before if metric.higher_is_better else before - after


def signed_change(gain: float, metric: Metric) -> float:
    """A gain expressed as the change of the metric itself (NE falls as it improves)."""
    return (gain if metric.higher_is_better else -gain) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class FittedGain:
    """The selected form's gain per decade at the end of the explored compute (metric units, + is better)."""

    form: str  # the selected form's name in words
    estimate: float
    low: float  # interval ends; NaN when there is no trustworthy interval
    high: float
    flat_from: float | None  # compute at which the form's gain per decade falls below the threshold
    rivals: tuple[tuple[str, float, float], ...] = ()  # (form name, its gain at the end, its AICc minus the best)

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def envelope_gains(frontier: Frontier, metric: Metric, window: float) -> tuple[float, float, float]:
    """(gain per decade over the last ``window`` decades, that window's width, gain per decade overall)."""
    kept, c_max, decades = frontier.kept, frontier.end, frontier.decades
    window_start = max(float(kept.compute[0]), c_max / 10**window)
    trailing_decades = float(np.log10(c_max / window_start))
    trailing = (improvement(envelope_at(frontier, window_start), float(kept.value[-1]), metric) / trailing_decades
                if trailing_decades > 0 else float("nan"))
    overall = (improvement(float(kept.value[0]), float(kept.value[-1]), metric) / decades
               if decades > 0 else float("nan"))
    return trailing, trailing_decades, overall


def assess_saturation(
    frontier: Frontier,
    metric: Metric,
    threshold: float,
    family: str,
    unit: str,
    fitted: FittedGain | None,
    why_no_fit: str = "no form could be fitted",
    window: float = WINDOW_DECADES,
    min_span: float = MIN_SPAN_DECADES,
) -> Saturation:
    """Judge one group from its selected fit (``fitted``; None with ``why_no_fit``) and its frontier."""
    decades = frontier.decades
    trailing, trailing_decades, overall = envelope_gains(frontier, metric, window)

    def verdict(kind: Verdict, reason: str, at: float | None = None) -> Saturation:
        return Saturation(kind, decades, trailing, trailing_decades, overall, threshold, at, f"{family} {reason}")

    if decades < min_span:
        return verdict("undetermined", f"cannot be judged: its frontier spans {decades_text(decades, 2)} of compute "
                                       f"(needs {min_span:g})")
    if fitted is None:
        return verdict("undetermined", f"cannot be judged: {why_no_fit}")
    change = _change_text(fitted, metric)
    where = f"at {number(frontier.end, 2)} {unit}, the end of its explored compute ({fitted.form})"
    if not fitted.has_interval:
        return verdict("undetermined", f"cannot be judged: the fitted {metric.label} change {change} per decade "
                                       f"{where} has no trustworthy interval (fewer than 5 trials, or too few "
                                       f"resamples could be fitted)")
    if fitted.low >= threshold:
        kind: Verdict = "improving"
        said = (f"keeps improving: fitted {metric.label} change {change} per decade {where}, beyond the threshold "
                f"{threshold:g}")
    elif fitted.high < threshold:
        kind = "saturated"
        flat = f"; below the threshold from {number(fitted.flat_from, 2)} {unit}" if fitted.flat_from else ""
        said = (f"saturates: fitted {metric.label} change {change} per decade {where}, below the threshold "
                f"{threshold:g}{flat}")
    else:
        return verdict("undetermined", f"cannot be judged: the fitted {metric.label} change {change} per decade "
                                       f"{where} straddles the threshold {threshold:g}")
    for name, gain, delta in fitted.rivals:
        if (gain >= threshold) != (kind == "improving"):
            return verdict("undetermined", f"cannot be judged: the data cannot tell the {fitted.form} from the {name} "
                                           f"(AICc {delta:.1f} apart, under 2), and they disagree: "
                                           f"{signed(signed_change(fitted.estimate, metric), 2)} vs "
                                           f"{signed(signed_change(gain, metric), 2)} per decade at the end")
    stalled = float(np.log10(frontier.end / frontier.kept.compute[-1]))
    if kind == "improving" and stalled >= min_span:
        return verdict("undetermined", f"cannot be judged: the fitted line still improves ({change} per decade), but "
                                       f"the frontier has not improved over its last {decades_text(stalled)} of compute "
                                       f"(since {number(float(frontier.kept.compute[-1]), 2)} {unit})")
    if np.isfinite(trailing) and (trailing >= threshold) != (kind == "improving"):
        return verdict("undetermined", f"cannot be judged: the fitted line {'improves' if kind == 'improving' else 'is flat'} "
                                       f"({change} per decade), but the frontier itself changed "
                                       f"{signed(signed_change(trailing, metric), 2)} per decade over its last "
                                       f"{decades_text(trailing_decades)} (threshold {threshold:g})")
    return verdict(kind, said, fitted.flat_from if kind == "saturated" else None)


def _change_text(fitted: FittedGain, metric: Metric) -> str:
    estimate = signed(signed_change(fitted.estimate, metric), 2)
    if not fitted.has_interval:
        return estimate
    ends = sorted(signed_change(v, metric) for v in (fitted.low, fitted.high))
    return f"{estimate} [{signed(ends[0], 2)}, {signed(ends[1], 2)}]"



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
