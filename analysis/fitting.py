"""The solvers behind the scaling-law forms: robust multi-start L-BFGS-B for power laws, least squares for lines.

Each solver takes compute, the quantity its form describes and per-point weights, and returns a
:class:`Solution`; which form uses which solver is the form registry's business (:mod:`analysis.forms`).

Power laws are fitted in log space, minimising the Huber loss of r = ln y - ln y_hat (Hoffmann et al.,
2022, Approach 3, who use delta = 1e-3): ln-residuals are relative errors, so the loss does not depend
on the metric's scale, and the Huber tails keep a stray lucky or broken evaluation from steering the fit.
Compute is centred (x = ln C - mean ln C) so the amplitude is estimated where the data are; it is
converted back to ``A`` for C in the caller's unit at the end.

Bounds: 0 <= E <= max(y) (not min(y): frontier values are the luckiest of noisy evaluations, so a
plateau's E may sit slightly above the best one), ALPHA_MIN <= alpha <= ALPHA_MAX, and a wide box on
ln A. Starts: every pair of ALPHA_STARTS and IRREDUCIBLE_STARTS (fractions of min y), ln A started
where the curve passes through the data's level. The pure power law is convex in (ln A, alpha) and
starts once, from least squares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
ALPHA_MIN, ALPHA_MAX = 1e-6, 5.0
ALPHA_STARTS = (0.1, 0.5, 2.0)
IRREDUCIBLE_STARTS = (0.0, 0.5, 0.9)
# with a warm start, one extra start guards against a resample having moved the optimum
WARM_IRREDUCIBLE_STARTS = (0.5,)
WARM_ALPHA_STARTS = (0.5,)
# relative closeness to a bound that counts as sitting on it
_BOUND_TOLERANCE = 1e-4
_LBFGS_OPTIONS = {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}
# how the solvers work, for the report's method section ({huber_delta} is filled in)
POWER_LAW_METHOD = ("Power laws: Huber loss (δ = {huber_delta:g}) on ln-residuals, L-BFGS-B from a grid of starts "
                    "(α in {{0.1, 0.5, 2}}, E at {{0, 0.5, 0.9}} of the best value), bounds 0 <= E <= max y, "
                    "1e-6 <= α <= 5.")
LEAST_SQUARES_METHOD = "Log-linear: least squares."

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass(frozen=True)
class Solution:
    """A solver's answer: parameters in the caller's compute unit, the minimised loss, the constraints it sits on."""

    params: dict[str, float]
    loss: float  # the minimised objective (Huber/delta per unit weight, or mean squared error)
    at_bound: dict[str, str]  # parameter -> "lower" | "upper", for those sitting on a constraint


def fit_log_linear(compute: np.ndarray, values: np.ndarray, weights: np.ndarray) -> Solution:
    """Weighted least squares of metric on ln C (the straight lines of the paper's Figure 7)."""
    root = np.sqrt(weights)
    design = np.column_stack([np.ones_like(compute), np.log(compute)])
    (a, b), *_ = np.linalg.lstsq(design * root[:, None], values * root, rcond=None)
    residual = values - (a + b * np.log(compute))
    return Solution({"a": float(a), "b": float(b)}, float(np.sum(weights * residual**2) / np.sum(weights)), {})


def fit_power_law(compute: np.ndarray, y: np.ndarray, weights: np.ndarray, delta: float,
                  warm_start: Mapping[str, float] | None, irreducible: bool) -> Solution:
    """y = [E +] A C^-alpha by Huber loss on ln-residuals; ``warm_start``: parameters of a fit to similar data.

    A warm start (e.g. the full sample's fit when fitting a bootstrap resample) replaces the grid of
    starts by itself plus a few others, which is what makes hundreds of resamples affordable.
    """
    log_compute = np.log(compute)
    center = float(np.sum(weights * log_compute) / np.sum(weights))
    x = log_compute - center
    objective = _huber_objective(x, np.log(y), weights, delta, irreducible)
    bounds = _bounds(y, irreducible)
    if not irreducible:
        # ln y_hat = ln A' - alpha x is linear, so the Huber problem is convex: one start suffices
        starts = [_least_squares_start(x, np.log(y), weights, bounds)]
    elif warm_start is None:
        starts = _starts(x, y, weights, irreducible, IRREDUCIBLE_STARTS, ALPHA_STARTS)
    else:
        starts = [_warm(warm_start, center, bounds)]
        starts += _starts(x, y, weights, irreducible, WARM_IRREDUCIBLE_STARTS, WARM_ALPHA_STARTS)
    best = None
    for start in starts:
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=_LBFGS_OPTIONS)
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise FloatingPointError("every start of the power-law fit gave a non-finite loss")
    *irreducible_term, log_amplitude, alpha = best.x
    params = {"E": float(irreducible_term[0])} if irreducible else {}
    # A' (C / C0)^-alpha = A C^-alpha with A = A' C0^alpha, C0 = exp(center)
    params |= {"A": float(np.exp(log_amplitude + alpha * center)), "alpha": float(alpha)}
    return Solution(params, float(best.fun), _at_bound(best.x, bounds, irreducible))


def _huber_objective(x: np.ndarray, log_y: np.ndarray, weights: np.ndarray, delta: float,
                     irreducible: bool) -> Objective:
    """Loss and gradient in theta = ([E,] ln A', alpha) for ln y_hat = ln(E + A' e^(-alpha x))."""
    share_of_weight = weights / np.sum(weights)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_excess = theta[-2] - theta[-1] * x
        E = theta[0] if irreducible else 0.0
        log_pred = np.logaddexp(np.log(E), log_excess) if E > 0 else log_excess
        residual = log_y - log_pred
        size = np.abs(residual)
        inside = size <= delta
        # Huber divided by delta: r^2 / (2 delta) inside, |r| - delta / 2 outside, so gradients are O(1)
        loss = np.where(inside, residual * residual * (0.5 / delta), size - 0.5 * delta)
        psi = share_of_weight * np.where(inside, residual / delta, np.sign(residual))
        share = np.exp(log_excess - log_pred)  # d ln y_hat / d ln A'; d ln y_hat / d alpha = -x share
        grad = [-(psi @ share), psi @ (x * share)]
        if irreducible:
            grad.insert(0, -(psi @ np.exp(-log_pred)))  # d ln y_hat / d E = 1 / y_hat
        return float(share_of_weight @ loss), np.array(grad)

    return objective


def _bounds(y: np.ndarray, irreducible: bool) -> list[tuple[float, float]]:
    log_amplitude = (-50.0, float(np.log(y.max())) + 10.0)
    alpha = (ALPHA_MIN, ALPHA_MAX)
    return [(0.0, float(y.max())), log_amplitude, alpha] if irreducible else [log_amplitude, alpha]


def _starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, irreducible: bool,
            fractions: tuple[float, ...], alphas: tuple[float, ...]) -> list[np.ndarray]:
    starts = []
    for fraction in fractions if irreducible else (0.0,):
        E = fraction * float(y.min())
        for alpha in alphas:
            # ln A' that puts the curve through the data's weighted mean level for this alpha and E
            log_amplitude = float(np.sum(weights * (np.log(y - E) + alpha * x)) / np.sum(weights))
            starts.append(np.array([E, log_amplitude, alpha] if irreducible else [log_amplitude, alpha]))
    return starts


def _least_squares_start(x: np.ndarray, log_y: np.ndarray, weights: np.ndarray,
                         bounds: list[tuple[float, float]]) -> np.ndarray:
    """Weighted least squares of ln y on x, clipped into the bounds: the pure power law's start."""
    mean_x, mean_y = np.average(x, weights=weights), np.average(log_y, weights=weights)
    spread = float(np.sum(weights * (x - mean_x) ** 2))
    alpha = -float(np.sum(weights * (x - mean_x) * (log_y - mean_y))) / spread if spread > 0 else ALPHA_STARTS[0]
    theta = np.array([mean_y + alpha * mean_x, alpha])
    return np.clip(theta, [low for low, _ in bounds], [high for _, high in bounds])


def _warm(params: Mapping[str, float], center: float, bounds: list[tuple[float, float]]) -> np.ndarray:
    """``params`` of an earlier fit as a start in this problem's coordinates, clipped into its bounds."""
    alpha = params["alpha"]
    theta = [np.log(params["A"]) - alpha * center, alpha]
    if "E" in params:
        theta.insert(0, params["E"])
    return np.clip(np.array(theta), [low for low, _ in bounds], [high for _, high in bounds])


def _at_bound(theta: np.ndarray, bounds: list[tuple[float, float]], irreducible: bool) -> dict[str, str]:
    names = ("E", "A", "alpha") if irreducible else ("A", "alpha")
    flags = {}
    for name, value, (low, high) in zip(names, theta, bounds):
        # E's box is as wide as the data's best value; the others are fixed, generous boxes
        scale = max(high - low, 1e-300) if name == "E" else max(abs(high), 1.0)
        if value - low <= _BOUND_TOLERANCE * scale:
            flags[name] = "lower"
        elif high - value <= _BOUND_TOLERANCE * scale:
            flags[name] = "upper"
    return flags
