"""The joint law of the metric in parameters and data, L(N, D) = E + A N^-alpha + B D^-beta, and the allocation it implies.

Hoffmann et al. (2022), approach 3, fitted as Besiroglu et al. (2024) advise: Huber loss
(:data:`analysis.fitting.HUBER_DELTA`) on ln L - ln L_hat with ln L_hat = LSE(a - alpha ln N,
b - beta ln D, e), L-BFGS-B from a grid of starts, every evaluation of every usable trial a point
(N = non-embedding parameters, D = C / (6 N) as in :mod:`analysis.isoflop`). Under C = 6 N D, the
compute-optimal N grows as C^(beta / (alpha + beta)) and D as C^(alpha / (alpha + beta)).
Intervals resample trials (:func:`analysis.bootstrap.resample_counts`), weighting each point by
its trial's draws. The fit is refused, in words, when the sweep cannot separate N from D.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp

from analysis.bootstrap import MIN_SUCCESS, MIN_TRIALS, resample_counts
from analysis.fitting import HUBER_DELTA
from analysis.isoflop import TOKENS, Refusal
from core import results_schema as schema

NAMES = ("E", "A", "alpha", "B", "beta", "n_exponent", "d_exponent")
MIN_SIZES = 3  # distinct N values: with two, A N^-alpha is any curve through two points
MIN_POINTS = 10
EXPONENT_BOUNDS = (1e-3, 3.0)
MAX_EXPONENT_RATIO = 10.0  # an exponent interval wider than this factor says nothing about the allocation
_MAX_ITERATIONS = 300  # the near-L1 Huber loss converges slowly; the fit is settled well before this
_STARTS = {"alpha": (0.2, 0.8), "beta": (0.2, 0.8), "e": (-2.0, 0.0)}


@dataclass(frozen=True)
class JointFit:
    metric: str
    params: dict[str, float] | None  # NAMES -> value; None when refused
    intervals: dict[str, tuple[float, float]]  # NAMES -> percentile interval (empty when not identified)
    num_points: int
    num_trials: int
    refusal: Refusal | None


def joint_points(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Every usable evaluation with N, D = C / (6 N) and a positive metric (the law's loss-like quantity)."""
    usable = table[table[schema.STATUS].isin(schema.USABLE_STATUSES)].dropna(subset=[metric, schema.FLOPS])
    rows = usable[(usable[schema.PARAMS_NON_EMBEDDING] > 0) & (usable[schema.FLOPS] > 0)].copy()
    rows[TOKENS] = rows[schema.FLOPS] / (6.0 * rows[schema.PARAMS_NON_EMBEDDING].astype(float))
    rows["loss"] = 1.0 - rows[metric] if schema.higher_is_better(metric) else rows[metric]
    return rows[rows["loss"] > 0]


def design_problem(rows: pd.DataFrame) -> str | None:
    """Why these points cannot separate N from D (None when they can)."""
    sizes = rows[schema.PARAMS_NON_EMBEDDING].nunique()
    if sizes < MIN_SIZES:
        return f"the sweep has {sizes} distinct non-embedding sizes; separating N from D needs at least {MIN_SIZES}"
    if len(rows) < MIN_POINTS:
        return f"only {len(rows)} evaluations; a five-parameter law needs at least {MIN_POINTS}"
    log_n, log_d = np.log(rows[schema.PARAMS_NON_EMBEDDING].astype(float)), np.log(rows[TOKENS])
    if abs(np.corrcoef(log_n, log_d)[0, 1]) > 0.98:
        return "N and D move together in every trial (|corr(ln N, ln D)| > 0.98): their exponents cannot be told apart"
    if rows[schema.TRIAL_ID].nunique() < MIN_TRIALS:
        return f"only {rows[schema.TRIAL_ID].nunique()} trials; intervals need at least {MIN_TRIALS}"
    return None


def fit_joint(table: pd.DataFrame, metric: str, replicates: int = 200, seed: int = 0, level: float = 0.95) -> JointFit:
    rows = joint_points(table, metric)
    trials = rows[schema.TRIAL_ID].nunique()
    problem = design_problem(rows)
    if problem is not None:
        return JointFit(metric, None, {}, len(rows), trials, Refusal(f"joint fit of {metric}", problem))
    log_n = np.log(rows[schema.PARAMS_NON_EMBEDDING].to_numpy(dtype=float))
    log_d, log_loss = np.log(rows[TOKENS].to_numpy()), np.log(rows["loss"].to_numpy())
    full = solve(log_n, log_d, log_loss, np.ones(len(rows)))
    pinned = [name for name in ("alpha", "beta") if min(abs(full[name] - bound) for bound in EXPONENT_BOUNDS) < 1e-3]
    if pinned:
        return JointFit(metric, full, {}, len(rows), trials, Refusal(f"joint fit of {metric}", (
            f"{' and '.join(pinned)} sits on its bound {EXPONENT_BOUNDS}: the metric does not move with "
            f"{' and '.join('N' if name == 'alpha' else 'D' for name in pinned)} over this sweep's range, so the "
            "law and its allocation are not identified")))
    ids, index = np.unique(rows[schema.TRIAL_ID].astype(str), return_inverse=True)
    draws = []
    for counts in resample_counts(len(ids), replicates, seed):
        weights = counts[index].astype(float)
        kept = weights > 0
        draws.append(solve(log_n[kept], log_d[kept], log_loss[kept], weights[kept], warm=full))
    intervals = _intervals(draws, replicates, level)
    refusal = None if intervals else Refusal(f"joint fit of {metric}", "too few trial resamples could be fitted: "
                                                                     "the law is a point estimate without intervals")
    loose = [name for name in ("alpha", "beta") if name in intervals and _undetermined(intervals[name])]
    if loose:
        refusal = Refusal(f"joint fit of {metric}", (
            f"the interval of {' and '.join(loose)} reaches its bound {EXPONENT_BOUNDS} or spans more than "
            f"{MAX_EXPONENT_RATIO:g}x: this sweep does not determine the law, nor the allocation it implies"))
    return JointFit(metric, full, intervals, len(rows), trials, refusal)


def _undetermined(interval: tuple[float, float]) -> bool:
    low, high = interval
    lower, upper = EXPONENT_BOUNDS
    return low <= 2 * lower or high >= 0.99 * upper or high > MAX_EXPONENT_RATIO * low


def solve(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, weights: np.ndarray,
          warm: dict[str, float] | None = None) -> dict[str, float]:
    """The law's parameters minimising the weighted Huber loss of ln-residuals, from a grid of starts."""
    share = weights / weights.sum()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, alpha, b, beta, e = theta
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])  # [3, P]
        predicted = logsumexp(terms, axis=0)
        softmax = np.exp(terms - predicted)  # d predicted / d term
        residual = log_loss - predicted
        size = np.abs(residual)
        inside = size <= HUBER_DELTA
        huber = np.where(inside, 0.5 * residual**2 / HUBER_DELTA, size - 0.5 * HUBER_DELTA)
        psi = -share * np.where(inside, residual / HUBER_DELTA, np.sign(residual))  # d loss / d predicted
        gradient = np.array([psi @ softmax[0], -(psi * log_n) @ softmax[0], psi @ softmax[1],
                             -(psi * log_d) @ softmax[1], psi @ softmax[2]])
        return float(share @ huber), gradient

    level = float(np.average(log_loss, weights=weights))
    starts = [np.array([level + alpha * log_n.mean(), alpha, level + beta * log_d.mean(), beta, level + e])
              for alpha, beta, e in itertools.product(_STARTS["alpha"], _STARTS["beta"], _STARTS["e"])]
    if warm is not None:  # a resample of the same data
        warm_start = np.array([np.log(warm["A"]), warm["alpha"], np.log(warm["B"]), warm["beta"], np.log(warm["E"])])
        starts = [warm_start, starts[0]]  # and one cold start, so a resample can leave the full fit's basin
    bounds = [(-50, 50), EXPONENT_BOUNDS, (-50, 50), EXPONENT_BOUNDS, (-20, float(log_loss.max()))]
    best = min((minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": _MAX_ITERATIONS}) for start in starts), key=lambda r: r.fun)
    a, alpha, b, beta, e = best.x
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": float(alpha), "B": float(np.exp(b)),
            "beta": float(beta), "n_exponent": float(beta / (alpha + beta)), "d_exponent": float(alpha / (alpha + beta))}


def _intervals(draws: list[dict[str, float]], replicates: int, level: float) -> dict[str, tuple[float, float]]:
    finite = [d for d in draws if all(np.isfinite(v) for v in d.values())]
    if replicates == 0 or len(finite) < MIN_SUCCESS * replicates:
        return {}
    tail = (1 - level) / 2
    return {name: tuple(float(q) for q in np.quantile([d[name] for d in finite], [tail, 1 - tail])) for name in NAMES}
