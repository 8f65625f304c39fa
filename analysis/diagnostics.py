"""How well a fitted form describes its points, and how well it predicts compute it was not fitted on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.columns import Metric
from analysis.fitting import HUBER_DELTA
from analysis.forms import FORMS, Form, PointFit, fit_form, fit_problem, predict_metric, to_fit_space
from analysis.frontier import Points

EXTRAPOLATION_FRACTION = 2.0 / 3.0


@dataclass(frozen=True)
class GoodnessOfFit:
    r2: float  # coefficient of determination in the space the form is fitted in (see r2_space)
    r2_space: str  # "ln(1 - HR@100)" for forms of the error (the power laws), "HR@100" for forms of the metric
    rmse: float  # root mean squared error in the metric's own units, comparable across forms


@dataclass(frozen=True)
class Extrapolation:
    """Fit on the frontier points in the smaller part of the log-compute range, predict the rest."""

    available: bool
    message: str | None
    cutoff: float  # largest compute used for fitting
    num_fit: int
    num_heldout: int
    mean_abs_error: float  # metric units
    max_abs_error: float
    mean_rel_error: float  # mean |predicted - observed| / |observed|
    mean_error: float  # mean (predicted - observed), metric units: the sign says which way it misses


def goodness_of_fit(fit: PointFit, compute: np.ndarray, values: np.ndarray, metric: Metric) -> GoodnessOfFit:
    predicted = predict_metric(fit.form, fit.params, compute, metric)
    rmse = float(np.sqrt(np.mean((predicted - values) ** 2)))
    if FORMS[fit.form].quantity == "metric":
        observed, fitted, space = values, predicted, metric.label
    else:
        observed, fitted = np.log(to_fit_space(values, metric)), np.log(to_fit_space(predicted, metric))
        space = f"ln({metric.fit_label})"
    total = float(np.sum((observed - observed.mean()) ** 2))
    r2 = 1.0 - float(np.sum((observed - fitted) ** 2)) / total if total > 0 else float("nan")
    return GoodnessOfFit(r2, space, rmse)


def extrapolation_check(
    form: Form,
    frontier: Points,
    metric: Metric,
    fraction: float = EXTRAPOLATION_FRACTION,
    huber_delta: float = HUBER_DELTA,
) -> Extrapolation:
    """Fit ``form`` on frontier points up to ``fraction`` of the log-compute range, predict the points above."""
    log_compute = np.log(frontier.compute)
    cutoff = float(np.exp(log_compute.min() + fraction * (log_compute.max() - log_compute.min())))
    train = frontier.compute <= cutoff
    held = ~train
    problem = fit_problem(form, frontier.compute[train], frontier.value[train], metric)
    if problem is not None or not held.any():
        reason = problem or "no frontier point above the cut"
        return Extrapolation(False, f"no extrapolation check: {reason} in the lower {fraction:.0%} of log-compute",
                             cutoff, int(train.sum()), int(held.sum()), *([float("nan")] * 4))
    fit = fit_form(form, frontier.compute[train], frontier.value[train], metric, huber_delta=huber_delta)
    predicted = predict_metric(form, fit.params, frontier.compute[held], metric)
    error = predicted - frontier.value[held]
    return Extrapolation(
        True, None, cutoff, int(train.sum()), int(held.sum()),
        float(np.mean(np.abs(error))), float(np.max(np.abs(error))),
        float(np.mean(np.abs(error) / np.abs(frontier.value[held]))), float(np.mean(error)),
    )
