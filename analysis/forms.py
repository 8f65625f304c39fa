"""The three scaling-law forms fitted against training compute C, their predictions and equations.

- ``saturating``: y = E + A * C^-alpha, a power law with an irreducible term E (Hoffmann et al., 2022);
- ``power``: y = A * C^-alpha, the pure power law (Kaplan et al., 2020);
- ``loglinear``: metric = a + b * ln C, the straight line on a log-compute axis of the paper's Figure 7.

The power laws describe a quantity that falls with compute, ``y``: the metric itself for
lower-is-better metrics (NE, log-perplexity, loss) and its error ``1 - metric`` for scores in [0, 1]
(HR, NDCG, MRR, AUC). The log-linear form describes the metric as reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from analysis.columns import BOUNDED_SCORES, Metric
from analysis.formatting import number

Form = Literal["saturating", "power", "loglinear"]
FORMS: tuple[Form, ...] = ("saturating", "power", "loglinear")
PARAMETERS: dict[Form, tuple[str, ...]] = {
    "saturating": ("E", "A", "alpha"),
    "power": ("A", "alpha"),
    "loglinear": ("a", "b"),
}
FORM_NAMES: dict[Form, str] = {
    "saturating": "power law + irreducible term",
    "power": "pure power law",
    "loglinear": "log-linear (paper)",
}


def to_fit_space(values: np.ndarray, metric: Metric) -> np.ndarray:
    """The falling quantity the power laws describe: ``1 - metric`` for scores, else the metric."""
    return 1.0 - values if metric.base in BOUNDED_SCORES else values


def from_fit_space(values: np.ndarray, metric: Metric) -> np.ndarray:
    return 1.0 - values if metric.base in BOUNDED_SCORES else values


def predict_metric(form: Form, params: Mapping[str, float], compute: np.ndarray, metric: Metric) -> np.ndarray:
    """The metric (in its reported units) that ``form`` with ``params`` predicts at ``compute``."""
    compute = np.asarray(compute, dtype=float)
    if form == "loglinear":
        return params["a"] + params["b"] * np.log(compute)
    y = params["A"] * compute ** -params["alpha"]
    if form == "saturating":
        y = y + params["E"]
    return from_fit_space(y, metric)


def gain_per_decade(form: Form, params: Mapping[str, float], compute: float, metric: Metric) -> float:
    """Improvement of the metric per decade of compute at ``compute`` (positive: better), from the fitted form."""
    if form == "loglinear":
        change = params["b"] * np.log(10.0)
        return float(change if metric.higher_is_better else -change)
    # d y / d log10 C for y = A C^-alpha (+E); y falls as the metric improves
    return float(params["alpha"] * params["A"] * compute ** -params["alpha"] * np.log(10.0))


def equation(form: Form, params: Mapping[str, float], metric: Metric, compute_symbol: str = "C") -> str:
    """A compact equation, e.g. ``1 - HR@100 = 0.41 + 0.12·C^-0.21``."""
    if form == "loglinear":
        sign = "-" if params["b"] < 0 else "+"
        return f"{metric.label} = {number(params['a'])} {sign} {number(abs(params['b']))}·ln {compute_symbol}"
    power = f"{number(params['A'])}·{compute_symbol}^-{number(params['alpha'])}"
    if form == "saturating":
        return f"{metric.fit_label} = {number(params['E'])} + {power}"
    return f"{metric.fit_label} = {power}"
