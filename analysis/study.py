"""The whole analysis of a results table as data: per (dataset, metric, family or model) frontier, fits, saturation.

Nothing here draws or writes; :mod:`analysis.report` turns a :class:`Study` into files.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from analysis import columns as col
from analysis.blas import single_threaded_blas
from analysis.bootstrap import Draws, Interval, bootstrap, intervals
from analysis.diagnostics import Extrapolation, GoodnessOfFit, extrapolation_check, goodness_of_fit
from analysis.errors import AnalysisError
from analysis.fitting import HUBER_DELTA, PointFit, fit_form, fit_problem
from analysis.forms import FORMS, PARAMETERS, Form, gain_per_decade
from analysis.frontier import Frontier, Points, compute_frontier, points_from_table
from analysis.saturation import MIN_SPAN_DECADES, WINDOW_DECADES, Saturation, assess_saturation

GroupBy = Literal["family", "model"]
PerModel = Literal["primary", "all", "none"]
# metric bases analysed by default (every HR cut-off present, NDCG@10, mean NE), as in Figure 7 and Table 4
DEFAULT_BASES = ("hr", "ndcg@10", "ne")
UNITS = {col.PF_DAYS: "PF-days", col.FLOPS: "FLOPs"}
# the metric a dataset's headline is about: NE for ranking, HR@100 for retrieval (the paper's Figure 7)
PRIMARY_PREFERENCE = ("valid/ne", "valid/hr@100", "valid/hr@500", "valid/hr@50", "valid/hr@200", "valid/hr@10",
                      "valid/ndcg@10", "valid/mrr", "valid/log_pplx", "train/loss")


@dataclass(frozen=True)
class Options:
    metrics: tuple[str, ...] = ()  # metric columns to analyse; empty: DEFAULT_BASES present in the table
    thresholds: Mapping[str, float] = field(default_factory=dict)  # metric column or "*" -> gain per decade
    compute: str = col.PF_DAYS  # compute column the laws are fitted against
    bootstrap: int = 200  # resamples of trials; 0 disables intervals
    seed: int = 0
    level: float = 0.95  # interval coverage
    huber_delta: float = HUBER_DELTA
    window_decades: float = WINDOW_DECADES
    min_span_decades: float = MIN_SPAN_DECADES
    per_model: PerModel = "primary"  # also fit each model alone: for the headline metric, every metric, or none
    jobs: int = 1  # worker processes for the groups' fits (bootstraps dominate the run time)

    def __post_init__(self) -> None:
        if self.compute not in col.COMPUTE_COLUMNS:
            raise AnalysisError(f"compute must be one of {', '.join(col.COMPUTE_COLUMNS)}; got '{self.compute}'")
        if self.bootstrap < 0:
            raise AnalysisError(f"bootstrap must be >= 0 resamples; got {self.bootstrap}")
        if not 0 < self.level < 1:
            raise AnalysisError(f"level must be in (0, 1); got {self.level}")
        if self.per_model not in ("primary", "all", "none"):
            raise AnalysisError(f"per_model must be primary, all or none; got '{self.per_model}'")
        if self.jobs < 1:
            raise AnalysisError(f"jobs must be >= 1 worker process; got {self.jobs}")
        if not self.huber_delta > 0:
            raise AnalysisError(f"huber_delta must be > 0; got {self.huber_delta}")
        bad = {key: value for key, value in self.thresholds.items() if not value >= 0}
        if bad:
            raise AnalysisError(f"thresholds must be >= 0 gain per decade; got {bad}")

    def threshold(self, metric: col.Metric) -> float:
        return float(self.thresholds.get(metric.column, self.thresholds.get("*", metric.default_threshold)))

    @property
    def unit(self) -> str:
        return UNITS[self.compute]


@dataclass(frozen=True)
class FormResult:
    form: Form
    problem: str | None  # why the form was not fitted (None when it was)
    fit: PointFit | None = None
    intervals: dict[str, Interval] = field(default_factory=dict)
    resamples: tuple[int, int] = (0, 0)  # (fitted, drawn)
    goodness: GoodnessOfFit | None = None
    extrapolation: Extrapolation | None = None

    @property
    def identified(self) -> bool:
        return self.fit is not None and all(interval.identified for interval in self.intervals.values())


@dataclass(frozen=True)
class GroupResult:
    dataset: str
    task: str
    metric: col.Metric
    group_by: GroupBy
    group: str
    family: str
    num_trials: int
    points: Points  # every usable evaluation of the group
    frontier: Frontier
    forms: dict[Form, FormResult]
    primary: Form | None  # the form drawn and used for the fitted gain
    saturation: Saturation
    fitted_gain: tuple[float, float, float] | None  # primary form's gain per decade at the largest compute, interval


# the arguments of analyse_group: points, metric, options, dataset, task, group_by, group, family
GroupTask = tuple[Points, col.Metric, "Options", str, str, GroupBy, str, str]


@dataclass(frozen=True)
class Study:
    table: pd.DataFrame  # every row of the results table
    usable: pd.DataFrame  # rows of completed and running trials
    options: Options
    metrics: dict[tuple[str, str], list[col.Metric]]  # (task, dataset) -> metrics analysed
    groups: list[GroupResult]

    def family_groups(self, task: str, dataset: str, metric: str) -> list[GroupResult]:
        return [g for g in self.groups if (g.task, g.dataset, g.metric.column, g.group_by) ==
                (task, dataset, metric, "family")]


def run_study(table: pd.DataFrame, options: Options) -> Study:
    """Analyse a validated results table."""
    with single_threaded_blas():
        return _run_study(table, options)


def _run_study(table: pd.DataFrame, options: Options) -> Study:
    usable = table[table[col.STATUS].isin(col.USABLE_STATUSES)]
    requested = _requested_metrics(table, options.metrics)
    metrics: dict[tuple[str, str], list[col.Metric]] = {}
    tasks: list[GroupTask] = []
    for (task, dataset), rows in usable.groupby([col.TASK, col.DATASET], sort=True):
        metrics[(task, dataset)] = present = _metrics_for(rows, requested)
        headline = primary_metric(present)
        for metric in present:
            per_model = options.per_model == "all" or (options.per_model == "primary" and metric == headline)
            tasks += _group_tasks(rows, task, dataset, metric, options, per_model)
    if options.metrics and not any(metrics.values()):
        raise AnalysisError(f"metrics {', '.join(options.metrics)} have no finite values in completed or "
                            f"running trials")
    return Study(table, usable, options, metrics, _analyse_all(tasks, options.jobs))


def _analyse_all(tasks: list[GroupTask], jobs: int) -> list[GroupResult]:
    """Every group's analysis, in order; in ``jobs`` spawned processes when there is more than one group."""
    if jobs == 1 or len(tasks) < 2:
        return [_analyse_task(task) for task in tasks]
    # spawn, not fork: a forked child would inherit OpenBLAS's thread pool in an unknown state
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=get_context("spawn")) as pool:
        return list(pool.map(_analyse_task, tasks))


def _analyse_task(task: GroupTask) -> GroupResult:
    with single_threaded_blas():
        return analyse_group(*task)


def _requested_metrics(table: pd.DataFrame, names: tuple[str, ...]) -> list[col.Metric] | None:
    if not names:
        return None
    available = col.metric_columns(table)
    chosen = []
    for name in names:
        column = col.normalize_metric_name(name)
        if column not in available:
            raise AnalysisError(f"metric '{name}' is not in the results table; available: {', '.join(available)}")
        chosen.append(col.parse_metric(column))
    return chosen


def _metrics_for(rows: pd.DataFrame, requested: list[col.Metric] | None) -> list[col.Metric]:
    if requested is not None:
        return [m for m in requested if rows[m.column].notna().any()]
    chosen = []
    for column in col.metric_columns(rows):
        if not column.startswith("valid/") or not rows[column].notna().any():
            continue
        name = column.removeprefix("valid/")
        base = name.split("@")[0]
        if name in DEFAULT_BASES or (base == "hr" and "@" in name):
            chosen.append(col.parse_metric(column))
    return sorted(chosen, key=lambda m: (m.base != "hr", m.base, m.cutoff or 0))


def primary_metric(metrics: list[col.Metric]) -> col.Metric | None:
    """The metric a dataset's headline verdict is about (see PRIMARY_PREFERENCE)."""
    by_column = {metric.column: metric for metric in metrics}
    for column in PRIMARY_PREFERENCE:
        if column in by_column:
            return by_column[column]
    return metrics[0] if metrics else None


def _group_tasks(rows: pd.DataFrame, task: str, dataset: str, metric: col.Metric, options: Options,
                 per_model: bool) -> list[GroupTask]:
    """The arguments of :func:`analyse_group` for each family (and model) with values of ``metric``."""
    tasks: list[GroupTask] = []
    partitions: list[tuple[GroupBy, str]] = [("family", col.FAMILY)] + ([("model", col.MODEL)] if per_model else [])
    for group_by, column in partitions:
        found = []
        for name, group_rows in rows.groupby(column, sort=True):
            points = points_from_table(group_rows, metric.column, options.compute)
            if len(points) > 0:
                found.append((str(group_rows[col.FAMILY].iloc[0]), str(name), points))
        for family, name, points in sorted(found, key=lambda item: (family_rank(item[0]), item[1])):
            tasks.append((points, metric, options, dataset, task, group_by, name, family))
    return tasks


def family_rank(family: str) -> tuple[int, str]:
    """GR first, then DLRM, then any other family by name: the order every table and figure uses."""
    return ({col.GR_FAMILY: 0, col.DLRM_FAMILY: 1}.get(family, 2), family)


def analyse_group(points: Points, metric: col.Metric, options: Options, dataset: str = "", task: str = "",
                  group_by: GroupBy = "family", group: str = "", family: str = "") -> GroupResult:
    """Frontier, the three fits with intervals and diagnostics, and the saturation verdict for one group."""
    frontier = compute_frontier(points, metric.higher_is_better)
    fitted = frontier.fit_points
    num_trials = int(np.unique(points.trial_id.astype(str)).size)
    full_fits, problems = {}, {}
    for form in FORMS:
        problems[form] = fit_problem(form, fitted.compute, fitted.value, metric)
        if problems[form] is None:
            full_fits[form] = fit_form(form, fitted.compute, fitted.value, metric, huber_delta=options.huber_delta)
    draws = (bootstrap(points, metric, full_fits, options.bootstrap, options.seed, options.huber_delta)
             if options.bootstrap > 0 and full_fits else {})
    forms = {form: _form_result(form, problems[form], full_fits.get(form), draws.get(form), frontier, metric,
                                num_trials, options) for form in FORMS}
    primary = _primary_form(forms)
    saturating = forms["saturating"]
    irreducible = ((saturating.intervals["E"].high, saturating.intervals["E"].identified)
                   if saturating.fit is not None and options.bootstrap > 0 else None)
    saturation = assess_saturation(frontier, metric, options.threshold(metric), group, options.unit, irreducible,
                                   options.window_decades, options.min_span_decades)
    fitted_gain = _fitted_gain(forms[primary], draws.get(primary), frontier, metric, options.level) if primary else None
    return GroupResult(dataset, task, metric, group_by, group, family, num_trials, points, frontier, forms,
                       primary, saturation, fitted_gain)


def _form_result(form: Form, problem: str | None, fit: PointFit | None, draws: Draws | None, frontier: Frontier,
                 metric: col.Metric, num_trials: int, options: Options) -> FormResult:
    if fit is None:
        return FormResult(form, problem)
    resamples = (int(draws.succeeded.sum()), draws.params.shape[0]) if draws is not None else (0, 0)
    return FormResult(
        form, None, fit, intervals(draws, fit, num_trials, options.level), resamples,
        goodness_of_fit(fit, frontier.fit_points.compute, frontier.fit_points.value, metric),
        extrapolation_check(form, frontier.fit_points, metric, huber_delta=options.huber_delta),
    )


def _primary_form(forms: dict[Form, FormResult]) -> Form | None:
    """The saturating law when E is identified, else the pure power law, else the log-linear line."""
    if forms["saturating"].identified:
        return "saturating"
    for form in ("power", "loglinear"):
        if forms[form].fit is not None:
            return form
    return None


def _fitted_gain(result: FormResult, draws: Draws | None, frontier: Frontier, metric: col.Metric,
                 level: float) -> tuple[float, float, float]:
    c_max = frontier.end
    estimate = gain_per_decade(result.form, result.fit.params, c_max, metric)
    if draws is None or not draws.succeeded.any() or not result.identified:
        return estimate, float("nan"), float("nan")  # no interval where the parameters' own are not trusted
    names = PARAMETERS[result.form]
    gains = [gain_per_decade(result.form, dict(zip(names, row)), c_max, metric)
             for row in draws.params[draws.succeeded]]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(gains, [tail, 1.0 - tail])
    return estimate, float(low), float(high)
