"""Compute-optimal allocation from an IsoFLOP sweep: per-budget profiles, allocation exponents, their intervals.

Hoffmann et al. (2022), approach 2: trials of several shapes are trained to the same compute C
(the sweep's ``train.max_flops`` axis, :file:`sweeps/isoflop.yaml`); for each budget, the final
metric is fitted as a parabola in ln x for each sized axis x (sequence length, depth, width,
non-embedding parameters N, tokens D), whose vertex is that budget's optimal x*. The allocation
exponent of x is the slope e of ln x*(C) = ln k + e ln C across budgets (least squares,
:func:`analysis.fitting.fit_log_linear`). Intervals resample trials within each budget
(:func:`analysis.bootstrap.resample_counts`), refit every profile and the slope, and take
percentiles; a resample whose profile has no interior minimum does not count, and when too many
fail the interval is not identified (:data:`analysis.bootstrap.MIN_SUCCESS`).

Tokens are not a column of the results table: D = C / (6 N), the parameter-equivalent tokens of
the 6ND rule (a GR's attention FLOPs make its true token count smaller at long sequences), so
the exponents of N and D add up to 1 by construction, as in Hoffmann et al.

Whatever the design cannot say is refused in words (:class:`Refusal`): no budget axis, too few
budgets, an axis that does not vary at equal compute, a profile whose best shape sits at the edge
of the shapes tried, trials that stopped short of their budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.bootstrap import MIN_SUCCESS, resample_counts
from analysis.fitting import fit_log_linear
from analysis.trials import last_evaluations
from core import results_schema as schema

BUDGET_AXIS = "train.max_flops"  # the sweep axis that groups trials into IsoFLOP profiles
TOKENS = "tokens"  # derived column: C / (6 N)
# the sized axes profiled when the table has them (in this order), besides N and D
SHAPE_AXES = ("data.max_seq_len", "model.num_layers", "model.embedding_dim", "model.dlrm.hidden_dim")
ALLOCATION_AXES = ("data.max_seq_len", schema.PARAMS_NON_EMBEDDING, TOKENS)  # the exponents the report leads with
MIN_BUDGETS = 3  # a slope from two points has no residual to check it against
MIN_VALUES = 3  # a parabola needs three distinct values of its axis
BUDGET_TOLERANCE = 0.10  # a trial's final FLOPs may exceed its budget by a last step, never fall 10% short


@dataclass(frozen=True)
class Refusal:
    """What the design cannot identify, and why, in words a reader can act on."""

    subject: str  # e.g. "data.max_seq_len at 1.2e10 FLOPs" or "allocation of data.max_seq_len"
    reason: str


@dataclass(frozen=True)
class Profile:
    """One budget's metric against one axis: the points, the fitted parabola in ln x and its minimum."""

    budget: float
    axis: str
    x: np.ndarray  # [n] axis value of each trial
    metric: np.ndarray  # [n] final metric of each trial
    coefficients: tuple[float, float, float] | None  # metric = a (ln x)^2 + b ln x + c; None when refused
    optimum: float | None  # x* = exp(-b / 2a), inside the values tried
    interval: tuple[float, float] | None  # percentile interval of x* over trial resamples
    refusal: Refusal | None
    # x* of each trial resample (None where one locates none), in the order of the budget's draw counts;
    # the allocation's resampled exponents read them. Empty when the profile is refused.
    resampled_optima: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class Allocation:
    """How the optimal value of one axis grows with compute: x* = k C^exponent."""

    axis: str
    exponent: float | None
    coefficient: float | None  # k, for C in FLOPs
    interval: tuple[float, float] | None
    budgets: tuple[float, ...]  # the budgets whose profiles located a minimum
    refusal: Refusal | None


@dataclass(frozen=True)
class IsoflopStudy:
    metric: str
    budgets: tuple[float, ...]
    profiles: tuple[Profile, ...]
    allocations: tuple[Allocation, ...]
    refusals: tuple[Refusal, ...]  # of the whole design (no budgets, trials short of their budget)


def final_points(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each usable trial's last evaluation with its metric, budget and derived tokens (rows without the metric dropped)."""
    usable = table[table[schema.STATUS].isin(schema.USABLE_STATUSES)]
    rows = last_evaluations(usable).dropna(subset=[metric, schema.FLOPS])
    rows = rows[rows[schema.PARAMS_NON_EMBEDDING] > 0].copy()
    rows[TOKENS] = rows[schema.FLOPS] / (6.0 * rows[schema.PARAMS_NON_EMBEDDING].astype(float))
    return rows


def design_refusals(table: pd.DataFrame, rows: pd.DataFrame) -> list[Refusal]:
    """Why this table is not an IsoFLOP design at all (empty when it is one)."""
    if BUDGET_AXIS not in table.columns or table[BUDGET_AXIS].dropna().empty:
        return [Refusal("IsoFLOP design", f"the table has no '{BUDGET_AXIS}' axis: trials must be grouped by equal "
                                          "training compute (the budget.flops pattern of sweeps/isoflop.yaml)")]
    refusals = []
    short = rows[rows[schema.FLOPS] < (1 - BUDGET_TOLERANCE) * rows[BUDGET_AXIS]]
    for _, row in short.iterrows():
        refusals.append(Refusal(
            f"trial {row[schema.TRIAL_ID]}",
            f"stopped at {row[schema.FLOPS]:.3g} FLOPs, short of its {row[BUDGET_AXIS]:.3g} budget (it ran out of "
            "data): it is left out; lower the budgets or lengthen the stream so every shape can spend them"))
    return refusals


def profiled_axes(rows: pd.DataFrame) -> list[str]:
    """The sized axes present in the table, then N and D."""
    return [axis for axis in SHAPE_AXES if axis in rows.columns and rows[axis].notna().any()] + \
        [schema.PARAMS_NON_EMBEDDING, TOKENS]


def fit_profile(x: np.ndarray, metric: np.ndarray, higher_is_better: bool, weights: np.ndarray | None = None,
                within: tuple[float, float] | None = None) -> tuple[tuple[float, float, float] | None, float | None, str | None]:
    """(coefficients, optimum, why not): the parabola of ``metric`` in ln x and its optimum inside the values tried.

    ``within``: the range the optimum must lie in (default: the range of ``x``); a trial resample
    is held to the full profile's range, since it asks where the same optimum lies, not whether
    the resample alone brackets it.
    """
    distinct = np.unique(x)
    if len(distinct) < MIN_VALUES:
        what = "one value" if len(distinct) == 1 else f"only {len(distinct)} values"
        return None, None, f"takes {what} at this budget; locating an optimum needs at least {MIN_VALUES}"
    sign = -1.0 if higher_is_better else 1.0  # fit the loss-like quantity: lower is better
    log_x = np.log(x.astype(float))
    a, b, c = np.polyfit(log_x, sign * metric, 2, w=None if weights is None else np.sqrt(weights))
    coefficients = (float(sign * a), float(sign * b), float(sign * c))
    if not a > 0:
        return coefficients, None, "the profile has no minimum (it curves the wrong way): the optimum is not bracketed"
    vertex = -b / (2 * a)
    low, high = np.log(within) if within is not None else (log_x.min(), log_x.max())
    if not low < vertex < high:
        edge = "smallest" if vertex <= low else "largest"
        return coefficients, None, (f"the fitted optimum ({np.exp(vertex):.3g}) lies beyond the {edge} value tried "
                                    f"({np.exp(low if edge == 'smallest' else high):.3g}): extend the shapes")
    return coefficients, float(np.exp(vertex)), None


def analyse_isoflop(table: pd.DataFrame, metric: str, replicates: int = 200, seed: int = 0,
                    level: float = 0.95) -> IsoflopStudy:
    """Profiles of every budget and sized axis, and the allocation exponents, of ``metric`` in ``table``."""
    rows = final_points(table, metric)
    design = design_refusals(table, rows)
    if BUDGET_AXIS not in table.columns or table[BUDGET_AXIS].dropna().empty:
        return IsoflopStudy(metric, (), (), (), tuple(design))
    rows = rows[rows[schema.FLOPS] >= (1 - BUDGET_TOLERANCE) * rows[BUDGET_AXIS]]
    budgets = tuple(sorted(float(b) for b in rows[BUDGET_AXIS].dropna().unique()))
    higher = schema.higher_is_better(metric)
    counts = _stratified_counts(rows, budgets, replicates, seed)
    profiles, allocations = [], []
    for axis in profiled_axes(rows):
        axis_profiles = [_profile(rows, budget, axis, metric, higher, counts, level) for budget in budgets]
        profiles += axis_profiles
        allocations.append(_allocation(budgets, axis, replicates, level, axis_profiles))
    return IsoflopStudy(metric, budgets, tuple(profiles), tuple(allocations), tuple(design))


def _stratified_counts(rows: pd.DataFrame, budgets: Sequence[float], replicates: int, seed: int) -> dict[float, np.ndarray]:
    """Budget -> [replicates, trials of that budget] draw counts (trials resampled within their budget)."""
    return {budget: resample_counts(int((rows[BUDGET_AXIS] == budget).sum()), replicates, seed + index)
            for index, budget in enumerate(budgets)}


def _profile(rows: pd.DataFrame, budget: float, axis: str, metric: str, higher: bool,
             counts: dict[float, np.ndarray], level: float) -> Profile:
    at = rows[rows[BUDGET_AXIS] == budget]
    x, y = at[axis].to_numpy(dtype=float), at[metric].to_numpy(dtype=float)
    coefficients, optimum, problem = fit_profile(x, y, higher)
    subject = f"{axis} at {budget:.3g} FLOPs"
    if problem is not None:
        return Profile(budget, axis, x, y, coefficients, None, None, Refusal(subject, problem))
    span = (float(x.min()), float(x.max()))
    optima = [fit_profile(x[draw > 0], y[draw > 0], higher, draw[draw > 0].astype(float), span)[1]
              for draw in counts[budget]]
    interval = _percentiles(np.log([o for o in optima if o is not None]), len(optima), level)
    refusal = None
    if interval is None:
        refusal = Refusal(subject, f"fewer than {MIN_SUCCESS:.0%} of the trial resamples bracket an optimum: the "
                                   "minimum is located but its uncertainty is not (add shapes around it, or seeds)")
    return Profile(budget, axis, x, y, coefficients, optimum, None if interval is None else
                   (float(np.exp(interval[0])), float(np.exp(interval[1]))), refusal, tuple(optima))


def _allocation(budgets: Sequence[float], axis: str, replicates: int, level: float,
                profiles: Sequence[Profile]) -> Allocation:
    subject = f"allocation of {axis}"
    located = [p for p in profiles if p.optimum is not None]
    if len(budgets) < MIN_BUDGETS:
        return Allocation(axis, None, None, None, (), Refusal(subject, (
            f"the sweep has {len(budgets)} budget(s); an exponent needs at least {MIN_BUDGETS} (a line through two "
            "optima cannot be checked)")))
    if len(located) < MIN_BUDGETS:
        return Allocation(axis, None, None, None, tuple(p.budget for p in located), Refusal(subject, (
            f"only {len(located)} of {len(budgets)} budgets locate an optimum of {axis} (see their profiles); "
            f"an exponent needs at least {MIN_BUDGETS}")))
    budget_of = np.array([p.budget for p in located])
    fit = fit_log_linear(budget_of, np.log([p.optimum for p in located]), np.ones(len(located)))
    slopes = []
    for optima in zip(*(p.resampled_optima for p in located)):  # one replicate: its optimum at every budget
        if all(o is not None for o in optima):
            slopes.append(fit_log_linear(budget_of, np.log(optima), np.ones(len(optima))).params["b"])
    interval = _percentiles(np.array(slopes), replicates, level)
    refusal = None if interval is not None else Refusal(subject, (
        f"only {len(slopes)} trial resamples located an optimum at every budget (needs {MIN_SUCCESS:.0%}): the "
        "exponent is a point estimate without an interval"))
    return Allocation(axis, float(fit.params["b"]), float(np.exp(fit.params["a"])), interval,
                      tuple(float(b) for b in budget_of), refusal)


def _percentiles(values: np.ndarray, replicates: int, level: float) -> tuple[float, float] | None:
    """The central ``level`` interval of ``values``, or None when too few of the replicates produced one."""
    if replicates == 0 or len(values) < MIN_SUCCESS * replicates:
        return None
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
