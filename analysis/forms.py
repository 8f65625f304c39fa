"""The scaling-law forms fitted against training compute C: one registry entry per form, read by everything else.

- ``saturating``: y = E + A * C^-alpha, a power law with an irreducible term E (Hoffmann et al., 2022);
- ``power``: y = A * C^-alpha, the pure power law (Kaplan et al., 2020);
- ``loglinear``: metric = a + b * ln C, the straight line on a log-compute axis of the paper's Figure 7.

The power laws describe a quantity that falls with compute, ``y``: the metric itself for
lower-is-better metrics (NE, log-perplexity, loss) and its error ``1 - metric`` for scores in [0, 1]
(HR, NDCG, MRR, AUC). The log-linear form describes the metric as reported.

A form is declared once, as a :class:`FitForm` in :data:`FORMS`: its name, equation, parameters,
solver, prediction, slope and where it flattens. Fitting, bootstrapping, selection by AICc, the
verdict, the tables, the figures, fits.json and the report's method all iterate the registry, so
adding a form is adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.columns import BOUNDED_SCORES, Metric
from analysis.fitting import (
    HUBER_DELTA, LEAST_SQUARES_METHOD, POWER_LAW_METHOD, Solution, fit_log_linear, fit_power_law,
)
from analysis.formatting import number

Form = str  # a key of FORMS
Params = Mapping[str, float]
# what a form describes: "error", the falling quantity y (fitted on ln y, so y must be positive), or "metric"
Quantity = Literal["error", "metric"]
# (compute, the described quantity, weights, Huber delta, warm-start parameters or None) -> the fit
Solver = Callable[[np.ndarray, np.ndarray, np.ndarray, float, Params | None], Solution]


@dataclass(frozen=True)
class Parameter:
    """One parameter of a form: how it is printed and what its bootstrap interval can say."""

    name: str  # key in the fitted parameters and in fits.json
    symbol: str = ""  # as printed (the name when empty)
    at_lower: str = ""  # why an interval piling up on the solver's lower bound is not identified
    at_upper: str = ""
    scale: bool = False  # positive scale: an interval spanning over bootstrap.MAX_RATIO x is not determined
    spread_note: str = ""  # said after that note
    per_ln_compute: bool = False  # a slope per unit of ln C: also printed per decade; an interval across 0 is no trend

    @property
    def shown(self) -> str:
        return self.symbol or self.name

    def bound_note(self, side: str) -> str:
        note = self.at_lower if side == "lower" else self.at_upper
        return note or f"reaches the {side} bound of {self.name}"


@dataclass(frozen=True)
class FitForm:
    """Everything the analysis asks of a form."""

    name: str  # in words, as tables, selections and verdicts name it
    formula: str  # the equation in the report's method, e.g. "y = A·C^-α"
    quantity: Quantity
    parameters: tuple[Parameter, ...]
    solve: Solver
    predict: Callable[[Params, np.ndarray], np.ndarray]  # the described quantity at compute C
    slope: Callable[[Params, float], float]  # d (described quantity) / d log10 C at compute C
    right_side: Callable[[Params, str], str]  # the fitted equation's right-hand side, given the compute symbol
    method: str  # how it is fitted, for the report ({huber_delta} is filled in)
    # compute from which the gain per decade stays below a threshold (None: a form whose gain never falls)
    flat_from: Callable[[Params, float], float] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(parameter.name for parameter in self.parameters)

    def parameter(self, name: str) -> Parameter:
        return next(parameter for parameter in self.parameters if parameter.name == name)


def _power_predict(params: Params, compute: np.ndarray) -> np.ndarray:
    return params["A"] * compute ** -params["alpha"]


def _saturating_predict(params: Params, compute: np.ndarray) -> np.ndarray:
    return _power_predict(params, compute) + params["E"]


def _power_slope(params: Params, compute: float) -> float:
    # d y / d log10 C for y = A C^-alpha (+E); y falls as the metric improves
    return -(params["alpha"] * params["A"] * compute ** -params["alpha"] * np.log(10.0))


def _power_flat_from(params: Params, threshold: float) -> float:
    """Compute at which a power law's gain per decade, alpha A C^-alpha ln 10, falls to ``threshold``."""
    alpha, amplitude = params["alpha"], params["A"]
    return float((alpha * amplitude * np.log(10.0) / threshold) ** (1.0 / alpha))


def _power_side(params: Params, symbol: str) -> str:
    return f"{number(params['A'])}·{symbol}^-{number(params['alpha'])}"


def _saturating_side(params: Params, symbol: str) -> str:
    return f"{number(params['E'])} + {_power_side(params, symbol)}"


def _loglinear_side(params: Params, symbol: str) -> str:
    sign = "-" if params["b"] < 0 else "+"
    return f"{number(params['a'])} {sign} {number(abs(params['b']))}·ln {symbol}"


def _saturating_solve(compute: np.ndarray, y: np.ndarray, weights: np.ndarray, delta: float,
                      warm_start: Params | None) -> Solution:
    return fit_power_law(compute, y, weights, delta, warm_start, irreducible=True)


def _power_solve(compute: np.ndarray, y: np.ndarray, weights: np.ndarray, delta: float,
                 warm_start: Params | None) -> Solution:
    return fit_power_law(compute, y, weights, delta, warm_start, irreducible=False)


def _loglinear_solve(compute: np.ndarray, values: np.ndarray, weights: np.ndarray, delta: float,
                     warm_start: Params | None) -> Solution:
    return fit_log_linear(compute, values, weights)  # least squares has one answer: no start, no Huber


_IRREDUCIBLE = Parameter(
    "E", scale=True,
    at_lower="reaches E = 0: the irreducible term is not identified (a pure power law fits as well)",
    at_upper="reaches the worst value observed: the data do not bound E from above")
_AMPLITUDE = Parameter(
    "A", scale=True, at_lower="reaches the search limit of A", at_upper="reaches the search limit of A",
    # A is y - E at C = 1 unit, often far outside the data, so alpha's uncertainty is magnified there
    spread_note=" (A is the excess at C = 1, far from the data: alpha's uncertainty is magnified)")
_EXPONENT = Parameter(
    "alpha", "α", scale=True,
    at_lower="reaches alpha = 0: no measurable decrease with compute", at_upper="reaches the search limit of alpha")

# the registry, in the order forms are fitted, listed and compared
FORMS: dict[Form, FitForm] = {
    "saturating": FitForm("power law + irreducible term", "y = E + A·C^-α", "error",
                          (_IRREDUCIBLE, _AMPLITUDE, _EXPONENT), _saturating_solve, _saturating_predict,
                          _power_slope, _saturating_side, POWER_LAW_METHOD, _power_flat_from),
    "power": FitForm("pure power law", "y = A·C^-α", "error", (_AMPLITUDE, _EXPONENT), _power_solve,
                     _power_predict, _power_slope, _power_side, POWER_LAW_METHOD, _power_flat_from),
    "loglinear": FitForm("log-linear (paper)", "metric = a + b·ln C (the paper's Figure 7)", "metric",
                         (Parameter("a"), Parameter("b", per_ln_compute=True)), _loglinear_solve,
                         lambda params, compute: params["a"] + params["b"] * np.log(compute),
                         lambda params, compute: params["b"] * np.log(10.0), _loglinear_side, LEAST_SQUARES_METHOD),
}


@dataclass(frozen=True)
class PointFit:
    """A form fitted to one set of points: parameters in the caller's compute unit."""

    form: Form
    params: dict[str, float]
    loss: float  # the minimised objective (Huber/delta per unit weight, or mean squared error)
    at_bound: dict[str, str]  # parameter -> "lower" | "upper", for those sitting on a constraint


def to_fit_space(values: np.ndarray, metric: Metric) -> np.ndarray:
    """The falling quantity the power laws describe: ``1 - metric`` for scores, else the metric."""
    return 1.0 - values if metric.base in BOUNDED_SCORES else values


def from_fit_space(values: np.ndarray, metric: Metric) -> np.ndarray:
    return 1.0 - values if metric.base in BOUNDED_SCORES else values


def described(form: Form, values: np.ndarray, metric: Metric) -> np.ndarray:
    """The quantity ``form`` describes for these metric values."""
    return to_fit_space(values, metric) if FORMS[form].quantity == "error" else values


def min_points(form: Form) -> int:
    """Points needed to fit ``form`` with at least one residual degree of freedom."""
    return len(FORMS[form].parameters) + 1


def fit_problem(form: Form, compute: np.ndarray, values: np.ndarray, metric: Metric) -> str | None:
    """Why ``form`` cannot be fitted to these points (None when it can)."""
    needed = min_points(form)
    distinct = np.unique(compute).size
    if distinct < needed:
        return f"not identifiable: {distinct} distinct compute values for {needed - 1} parameters (needs {needed})"
    if FORMS[form].quantity == "error" and np.any(to_fit_space(values, metric) <= 0):
        return f"not applicable: {metric.fit_label} reaches 0 or below, which a power law cannot describe"
    return None


def fit_form(
    form: Form,
    compute: np.ndarray,
    values: np.ndarray,
    metric: Metric,
    weights: np.ndarray | None = None,
    huber_delta: float = HUBER_DELTA,
    warm_start: PointFit | None = None,
) -> PointFit:
    """Fit ``form`` to metric ``values`` at ``compute``; call :func:`fit_problem` first.

    ``warm_start`` is a fit of the same form to similar data (e.g. the full sample when fitting a
    bootstrap resample); solvers that search from starting points start from it.
    """
    compute = np.asarray(compute, dtype=float)
    weights = np.ones_like(compute) if weights is None else np.asarray(weights, dtype=float)
    quantity = described(form, np.asarray(values, dtype=float), metric)
    solution = FORMS[form].solve(compute, quantity, weights, huber_delta,
                                 warm_start.params if warm_start is not None else None)
    return PointFit(form, solution.params, solution.loss, solution.at_bound)


def predict_metric(form: Form, params: Params, compute: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric (in its reported units) that ``form`` with ``params`` predicts at ``compute``."""
    predicted = FORMS[form].predict(params, np.asarray(compute, dtype=float))
    return from_fit_space(predicted, metric) if FORMS[form].quantity == "error" else predicted


def gain_per_decade(form: Form, params: Params, compute: float, metric: Metric) -> float:
    """Improvement of the metric per decade of compute at ``compute`` (positive: better), from the fitted form."""
    slope = FORMS[form].slope(params, compute)
    # the error falls as the metric improves, and so does a lower-is-better metric
    falls_when_better = FORMS[form].quantity == "error" or not metric.higher_is_better
    return float(-slope if falls_when_better else slope)


def flat_from(form: Form, params: Params, threshold: float) -> float | None:
    """Compute from which ``form``'s gain per decade stays below ``threshold`` (None when it never falls)."""
    if FORMS[form].flat_from is None or threshold <= 0:
        return None  # e.g. a straight line on log-compute gains the same every decade
    return FORMS[form].flat_from(params, threshold)


def equation(form: Form, params: Params, metric: Metric, compute_symbol: str = "C") -> str:
    """A compact equation, e.g. ``1 - HR@100 = 0.41 + 0.12·C^-0.21``."""
    left = metric.fit_label if FORMS[form].quantity == "error" else metric.label
    return f"{left} = {FORMS[form].right_side(params, compute_symbol)}"


def forms_sentence() -> str:
    """The report's sentence listing every form's equation."""
    of_error = " and ".join(f.formula for f in FORMS.values() if f.quantity == "error")
    of_metric = " and ".join(f.formula for f in FORMS.values() if f.quantity == "metric")
    parts = ([f"{of_error}, with y the metric for NE/loss and 1 - metric for HR/NDCG/MRR/AUC"] if of_error else []) + \
        ([of_metric] if of_metric else [])
    return f"Forms: {'; and '.join(parts)}. C is in the compute unit above."


def methods_sentence(huber_delta: float) -> str:
    """The report's sentence on how the forms are fitted (each solver said once)."""
    return " ".join(dict.fromkeys(f.method for f in FORMS.values())).format(huber_delta=huber_delta)
