"""Bootstrap intervals for fitted parameters, resampling trials (not rows), and the verdict on identifiability.

A trial's evaluations are one learning curve and share its hyperparameters and seed, so they are not
independent draws; the unit that was sampled is the trial. Each resample draws as many trials as there
are, with replacement (multinomial counts), rebuilds the frontier from the drawn trials' evaluations,
weights each frontier point by how many times its trial was drawn, and refits. Intervals are
percentiles of the refits.

An interval is reported as *not identified* rather than as numbers when the resamples cannot speak
for it: too few trials, too many resamples that could not be fitted, a parameter that piles up on a
constraint (E = 0, alpha at its search limit), an interval of E, A or alpha spanning more than
two orders of magnitude, or an interval of zero width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.columns import Metric
from analysis.fitting import HUBER_DELTA
from analysis.forms import FORMS, Form, Parameter, PointFit, fit_form, fit_problem
from analysis.frontier import Points, compute_frontier

MIN_TRIALS = 5  # fewer trials give at most 35 distinct resamples: too few for percentile intervals
MIN_SUCCESS = 0.8
MAX_RATIO = 100.0


@dataclass(frozen=True)
class Draws:
    """Refitted parameters of one form over all resamples; NaN rows are resamples that could not be fitted."""

    form: Form
    params: np.ndarray  # [replicates, k] in FORMS[form].names order
    bound_hits: dict[tuple[str, str], int]  # (parameter, "lower"|"upper") -> resamples sitting there

    @property
    def succeeded(self) -> np.ndarray:
        return np.all(np.isfinite(self.params), axis=1) if self.params.size else np.zeros(0, dtype=bool)


@dataclass(frozen=True)
class Interval:
    """A percentile interval, or the reason it cannot be trusted."""

    low: float
    high: float
    identified: bool
    note: str | None


def resample_counts(num_trials: int, replicates: int, seed: int) -> np.ndarray:
    """[replicates, num_trials] times each trial is drawn when drawing num_trials with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_trials, np.full(num_trials, 1.0 / num_trials), size=replicates)


def bootstrap(
    points: Points,
    metric: Metric,
    full_fits: dict[Form, PointFit],
    replicates: int,
    seed: int,
    huber_delta: float = HUBER_DELTA,
    use_frontier: bool = True,
) -> dict[Form, Draws]:
    """Refit each form in ``full_fits`` on trial resamples of ``points`` (evaluations of one group)."""
    trials, trial_index = np.unique(points.trial_id.astype(str), return_inverse=True)
    counts = resample_counts(len(trials), replicates, seed)
    draws = {form: np.full((replicates, len(FORMS[form].names)), np.nan) for form in full_fits}
    hits: dict[Form, dict[tuple[str, str], int]] = {form: {} for form in full_fits}
    for replicate, trial_counts in enumerate(counts):
        sample = points.subset(trial_counts[trial_index] > 0)
        if use_frontier:
            sample = compute_frontier(sample, metric.higher_is_better).fit_points
        weights = trial_counts[np.searchsorted(trials, sample.trial_id.astype(str))].astype(float)
        for form, full in full_fits.items():
            if fit_problem(form, sample.compute, sample.value, metric) is not None:
                continue
            refit = fit_form(form, sample.compute, sample.value, metric, weights, huber_delta, warm_start=full)
            draws[form][replicate] = [refit.params[name] for name in FORMS[form].names]
            for name, side in refit.at_bound.items():
                hits[form][(name, side)] = hits[form].get((name, side), 0) + 1
    return {form: Draws(form, draws[form], hits[form]) for form in full_fits}


def intervals(draws: Draws | None, full: PointFit, num_trials: int, level: float) -> dict[str, Interval]:
    """Percentile intervals for each parameter of ``full``'s form, each with its identifiability verdict."""
    parameters = FORMS[full.form].parameters
    if draws is None or draws.params.shape[0] == 0:
        return {parameter.name: _unbootstrapped(parameter, full) for parameter in parameters}
    ok = draws.succeeded
    replicates = draws.params.shape[0]
    problem = group_problem(num_trials, int(ok.sum()), replicates)
    tail = (1.0 - level) / 2.0
    result = {}
    for column, parameter in enumerate(parameters):
        values = draws.params[ok, column]
        low, high = (np.quantile(values, [tail, 1.0 - tail]) if values.size else (np.nan, np.nan))
        note = problem or _parameter_problem(parameter, float(low), float(high), draws, int(ok.sum()), tail)
        result[parameter.name] = Interval(float(low), float(high), note is None, note)
    return result


def _unbootstrapped(parameter: Parameter, full: PointFit) -> Interval:
    side = full.at_bound.get(parameter.name)
    note = parameter.bound_note(side) if side else "no interval: bootstrap disabled"
    return Interval(np.nan, np.nan, side is None, note)


def group_problem(num_trials: int, succeeded: int, replicates: int) -> str | None:
    """Why no interval of this group can be trusted (None when resampling its trials can measure uncertainty)."""
    if num_trials < MIN_TRIALS:
        return f"only {num_trials} trial(s): resampling trials cannot measure uncertainty (needs {MIN_TRIALS})"
    if succeeded < MIN_SUCCESS * replicates:
        return (f"only {succeeded} of {replicates} resamples had enough distinct compute values to fit; "
                f"add trials at more compute levels")
    return None


def _parameter_problem(parameter: Parameter, low: float, high: float, draws: Draws, succeeded: int,
                       tail: float) -> str | None:
    for side in ("lower", "upper"):
        if draws.bound_hits.get((parameter.name, side), 0) > tail * succeeded:
            return parameter.bound_note(side)
    if not high > low:
        return "degenerate: every resample gave the same value"
    if parameter.scale and low > 0 and high / low > MAX_RATIO:
        note = f"spans more than {MAX_RATIO:.0f}x ({low:.3g} to {high:.3g}): not determined by these points"
        return note + parameter.spread_note
    return None
