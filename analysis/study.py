"""The whole analysis of a results table as data: per (dataset, metric, family or model) frontier, fits, saturation.

Nothing here draws or writes; :mod:`analysis.report` turns a :class:`Study` into files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from analysis import columns as col
from analysis.blas import single_threaded_blas
from analysis.bootstrap import Draws, Interval, bootstrap, group_problem, intervals
from analysis.diagnostics import Extrapolation, GoodnessOfFit, extrapolation_check, goodness_of_fit
from analysis.errors import AnalysisError
from analysis.fitting import HUBER_DELTA
from analysis.forms import FORMS, Form, PointFit, fit_form, fit_problem, flat_from, gain_per_decade
from analysis.frontier import Frontier, Points, compute_frontier, points_from_table
from analysis.saturation import MIN_SPAN_DECADES, WINDOW_DECADES, FittedGain, Saturation, assess_saturation
from core import results_schema as schema

GroupBy = Literal["family", "model"]
PerModel = Literal["primary", "all", "none"]
# metric bases analysed by default (every HR cut-off present, NDCG@10, mean NE), as in Figure 7 and Table 4
DEFAULT_BASES = ("hr", "ndcg@10", "ne")
UNITS = {schema.PF_DAYS: "PF-days", schema.FLOPS: "FLOPs"}
# the metric a dataset's headline is about: NE for ranking, HR@100 for retrieval (the paper's Figure 7)
# forms whose AICc is within this of the best are ones the data cannot tell apart (Burnham & Anderson, 2002)
INDISTINGUISHABLE_AICC = 2.0
PRIMARY_PREFERENCE = ("valid/ne", "valid/hr@100", "valid/hr@500", "valid/hr@50", "valid/hr@200", "valid/hr@10",
                      "valid/ndcg@10", "valid/mrr", "valid/log_pplx", "train/loss")


@dataclass(frozen=True)
class Options:
    metrics: tuple[str, ...] = ()  # metric columns to analyse; empty: DEFAULT_BASES present in the table
    thresholds: Mapping[str, float] = field(default_factory=dict)  # metric column or "*" -> gain per decade
    compute: str = schema.PF_DAYS  # compute column the laws are fitted against
    bootstrap: int = 200  # resamples of trials; 0 disables intervals
    seed: int = 0
    level: float = 0.95  # interval coverage
    huber_delta: float = HUBER_DELTA
    window_decades: float = WINDOW_DECADES
    min_span_decades: float = MIN_SPAN_DECADES
    per_model: PerModel = "primary"  # also fit each model alone: for the headline metric, every metric, or none
    jobs: int = 1  # worker processes for the groups' fits (bootstraps dominate the run time)

    def __post_init__(self) -> None:
        if self.compute not in schema.COMPUTE_COLUMNS:
            raise AnalysisError(f"compute must be one of {', '.join(schema.COMPUTE_COLUMNS)}; got '{self.compute}'")
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
    aicc: float = float("nan")  # small-sample AIC of the fit's metric-unit residuals; NaN: too few points

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
    primary: Form | None  # the form selected by AICc: drawn, and the one the verdict and fitted gain come from
    saturation: Saturation
    fitted_gain: FittedGain | None  # the primary form's gain per decade at the largest compute, with interval
    selection: str  # how the primary form was chosen, or why none was, in words


# the arguments of analyse_group: points, metric, options, dataset, task, group_by, group, family
GroupTask = tuple[Points, col.Metric, "Options", str, str, GroupBy, str, str]


@dataclass(frozen=True)
class Study:
    table: pd.DataFrame  # every row of the results table
    usable: pd.DataFrame  # rows of completed and running trials
    options: Options
    metrics: dict[tuple[str, str], list[col.Metric]]  # (task, dataset) -> metrics analysed
    groups: list[GroupResult]
    notes: tuple[str, ...] = ()  # what the analysis did to the table that a reader must know (e.g. split eval sets)

    def family_groups(self, task: str, dataset: str, metric: str) -> list[GroupResult]:
        return [g for g in self.groups if (g.task, g.dataset, g.metric.column, g.group_by) ==
                (task, dataset, metric, "family")]


def run_study(table: pd.DataFrame, options: Options) -> Study:
    """Analyse a validated results table."""
    with single_threaded_blas():
        return _run_study(table, options)


def _run_study(table: pd.DataFrame, options: Options) -> Study:
    table, notes = separate_evaluation_sets(table)
    usable = table[table[schema.STATUS].isin(schema.USABLE_STATUSES)]
    requested = _requested_metrics(table, options.metrics)
    metrics: dict[tuple[str, str], list[col.Metric]] = {}
    tasks: list[GroupTask] = []
    for (task, dataset), rows in usable.groupby([schema.TASK, schema.DATASET], sort=True):
        metrics[(task, dataset)] = present = _metrics_for(rows, requested)
        headline = primary_metric(present)
        for metric in present:
            per_model = options.per_model == "all" or (options.per_model == "primary" and metric == headline)
            tasks += _group_tasks(rows, task, dataset, metric, options, per_model)
    if options.metrics and not any(metrics.values()):
        raise AnalysisError(f"metrics {', '.join(options.metrics)} have no finite values in completed or "
                            f"running trials")
    return Study(table, usable, options, metrics, _analyse_all(tasks, options.jobs), notes)


def separate_evaluation_sets(table: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Never one frontier over rows scored on different data: each evaluation set becomes its own dataset.

    A (task, dataset) whose trials were evaluated on more than one set (other data seeds, other
    generator settings, another split) is relabelled per set, ``dataset [data.key=value]`` by the
    data settings that tell the sets apart (else by the set's identifier), so every frontier, fit,
    verdict and comparison below is built from evaluations on one set of events.
    """
    notes = []
    table = table.copy()
    for (task, dataset), rows in table.groupby([schema.TASK, schema.DATASET], sort=True):
        rows = rows[rows[schema.EVAL_SET].notna()]
        found = sorted(rows[schema.EVAL_SET].astype(str).unique())
        if len(found) < 2:
            continue
        labels = _evaluation_set_labels(rows, found)
        renamed = [f"{dataset} [{labels[value]}]" for value in rows[schema.EVAL_SET].astype(str)]
        table.loc[rows.index, schema.DATASET] = renamed
        notes.append(f"{dataset} ({task}) was evaluated on {len(found)} different sets "
                     f"({'; '.join(f'{labels[v]}: {v}' for v in found)}): they are analysed apart, never on one frontier")
    return table, tuple(notes)


def _evaluation_set_labels(rows: pd.DataFrame, sets: list[str]) -> dict[str, str]:
    """Each set's name: the data.* settings constant within it that differ between sets, else its identifier."""
    telling = []
    for column in rows.columns:
        if not str(column).startswith("data.") or column in (schema.TASK, schema.DATASET):
            continue
        per_set = rows.groupby(schema.EVAL_SET)[column].agg(lambda v: tuple(sorted(map(str, v.unique()))))
        if all(len(values) == 1 for values in per_set) and per_set.nunique() == len(sets):
            telling.append(column)
    if not telling:
        return {value: value for value in sets}
    first = rows.drop_duplicates(schema.EVAL_SET).set_index(schema.EVAL_SET)
    return {value: ", ".join(f"{c.removeprefix('data.')}={first.loc[value, c]}" for c in telling) for value in sets}


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
    partitions: list[tuple[GroupBy, str]] = [("family", schema.FAMILY)]
    if per_model:
        partitions.append(("model", schema.MODEL))
    models_per_family = rows.groupby(schema.FAMILY)[schema.MODEL].nunique()
    for group_by, column in partitions:
        found = []
        for name, group_rows in rows.groupby(column, sort=True):
            if group_by == "model" and models_per_family[group_rows[schema.FAMILY].iloc[0]] < 2:
                continue  # the family's own fit already is this model's
            points = points_from_table(group_rows, metric.column, options.compute)
            if len(points) > 0:
                found.append((str(group_rows[schema.FAMILY].iloc[0]), str(name), points))
        for family, name, points in sorted(found, key=lambda item: (family_rank(item[0]), item[1])):
            tasks.append((points, metric, options, dataset, task, group_by, name, family))
    return tasks


def family_rank(family: str) -> tuple[int, str]:
    """GR first, then DLRM, then any other family by name: the order every table and figure uses."""
    return ({schema.GR_FAMILY: 0, schema.DLRM_FAMILY: 1}.get(family, 2), family)


def analyse_group(points: Points, metric: col.Metric, options: Options, dataset: str = "", task: str = "",
                  group_by: GroupBy = "family", group: str = "", family: str = "") -> GroupResult:
    """Frontier, each registered form's fit with intervals and diagnostics, and the saturation verdict of one group."""
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
    primary, selection, rivals = select_form(forms)
    fitted_gain = (_fitted_gain(forms, primary, draws.get(primary), frontier, metric, options, rivals, num_trials)
                   if primary else None)
    saturation = assess_saturation(frontier, metric, options.threshold(metric), group, options.unit, fitted_gain,
                                   selection, options.window_decades, options.min_span_decades)
    return GroupResult(dataset, task, metric, group_by, group, family, num_trials, points, frontier, forms,
                       primary, saturation, fitted_gain, selection)


def _form_result(form: Form, problem: str | None, fit: PointFit | None, draws: Draws | None, frontier: Frontier,
                 metric: col.Metric, num_trials: int, options: Options) -> FormResult:
    if fit is None:
        return FormResult(form, problem)
    resamples = (int(draws.succeeded.sum()), draws.params.shape[0]) if draws is not None else (0, 0)
    goodness = goodness_of_fit(fit, frontier.fit_points.compute, frontier.fit_points.value, metric)
    return FormResult(
        form, None, fit, intervals(draws, fit, num_trials, options.level), resamples, goodness,
        extrapolation_check(form, frontier.fit_points, metric, huber_delta=options.huber_delta),
        aicc(goodness.rmse, len(frontier.fit_points), len(FORMS[form].parameters)),
    )


def aicc(rmse: float, num_points: int, num_parameters: int) -> float:
    """AICc of a least-squares-like fit from its RMSE (Hurvich & Tsai, 1989); NaN below k + 2 points.

    Residuals are in the metric's own units for every form, so the forms are compared on one scale.
    """
    n, k = num_points, num_parameters
    if n < k + 2:
        return float("nan")
    residual_variance = max(rmse**2, 1e-300)  # a perfect fit would otherwise be -inf
    return n * np.log(residual_variance) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def select_form(forms: dict[Form, FormResult]) -> tuple[Form | None, str, tuple[Form, ...]]:
    """(the form with the lowest AICc, how it was chosen in words, the other forms within 2 AICc of it)."""
    scored = {form: result.aicc for form, result in forms.items() if result.fit is not None and np.isfinite(result.aicc)}
    if not scored:
        fitted = [f for f, r in forms.items() if r.fit is not None]
        needed = min(len(spec.parameters) + 2 for spec in FORMS.values())
        why = ("no form could be fitted" if not fitted else
               f"too few frontier points to choose a form by AICc (needs at least {needed})")
        return None, why, ()
    best = min(scored, key=scored.get)
    rivals = tuple(f for f, value in scored.items() if f != best and value - scored[best] < INDISTINGUISHABLE_AICC)
    others = ", ".join(f"{FORMS[f].name} {scored[f] - scored[best]:+.1f}" for f in scored if f != best)
    text = f"{FORMS[best].name}: lowest AICc" + (f" (ΔAICc: {others})" if others else "")
    if rivals:
        text += f"; {indistinguishable(FORMS[f].name for f in rivals)}"
    return best, text, rivals


def indistinguishable(form_names: Iterable[str]) -> str:
    """The words for forms within 2 AICc of the selected one."""
    return f"the data cannot tell it from the {' or the '.join(form_names)} (ΔAICc < 2)"


def _fitted_gain(forms: dict[Form, FormResult], primary: Form, draws: Draws | None, frontier: Frontier,
                 metric: col.Metric, options: Options, rivals: tuple[Form, ...], num_trials: int) -> FittedGain:
    result = forms[primary]
    c_max, threshold = frontier.end, options.threshold(metric)
    estimate = gain_per_decade(result.form, result.fit.params, c_max, metric)
    low = high = float("nan")
    # The gain at the data is what the verdict needs; it stays determined when A (the excess at C = 1,
    # far from the data) is not, so only the group-level conditions of a trustworthy bootstrap apply.
    replicates = draws.params.shape[0] if draws is not None else 0
    succeeded = int(draws.succeeded.sum()) if draws is not None else 0
    if replicates and group_problem(num_trials, succeeded, replicates) is None:
        names = FORMS[result.form].names
        gains = [gain_per_decade(result.form, dict(zip(names, row)), c_max, metric)
                 for row in draws.params[draws.succeeded]]
        tail = (1.0 - options.level) / 2.0
        low, high = (float(v) for v in np.quantile(gains, [tail, 1.0 - tail]))
    rival_gains = tuple((FORMS[f].name, gain_per_decade(f, forms[f].fit.params, c_max, metric),
                         forms[f].aicc - result.aicc) for f in rivals)
    flat = flat_from(result.form, result.fit.params, threshold)
    return FittedGain(FORMS[result.form].name, estimate, low, high, flat, rival_gains)

