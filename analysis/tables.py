"""The report's tables: fits, saturation, Table 4-style test metrics, trials and failures, as render blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import columns as col
from analysis.bootstrap import Interval
from analysis.errors import AnalysisError
from analysis.formatting import decades_text, number, signed
from analysis.forms import FORMS, Parameter, equation
from analysis.render import Bullets, Table
from analysis.saturation import signed_change
from analysis.seeds import SeedSpread, axes_varying_per_model
from analysis.study import FormResult, GroupResult, Study
from analysis.trials import best_per_trial, last_evaluations
from core import results_schema as schema

# the paper's Table 4 baseline is SASRec for retrieval; a DLRM for ranking
DEFAULT_BASELINES = {"retrieval": ("sasrec",), "gr_retrieval": ("sasrec",), "ranking": ("dlrm", "dcnv2")}
# column order of Table 4: retrieval metrics as in the paper (HR, NDCG), then ranking ones
_TABLE4_ORDER = {"hr": 0, "ndcg": 1, "mrr": 2, "ne": 3, "auc": 4, "log_pplx": 5, "loss": 6}


def fits_table(groups: Sequence[GroupResult], level: float) -> Table:
    """One row per (group, form): equation, parameters with intervals, fit quality, extrapolation, notes."""
    header = ("Group", "Form", "Fit", "Parameters [interval]", "R²", "RMSE", "ΔAICc", "Extrapolation", "Notes")
    rows = []
    for group in groups:
        best = group.forms[group.primary].aicc if group.primary else float("nan")
        for form, result in group.forms.items():
            cells = _fit_cells(result, group)
            delta = f"{result.aicc - best:+.1f}" if np.isfinite(result.aicc) and np.isfinite(best) else "—"
            rows.append((group.group, FORMS[form].name + (" ★" if form == group.primary else ""),
                         *cells[:4], delta, *cells[4:]))
    caption = (f"Fits to the frontier of {groups[0].metric.label} ({groups[0].metric.split}); ★ marks the form "
               f"selected by AICc (lowest; ΔAICc against it, under 2 means the data cannot tell the forms apart): "
               f"the one drawn in the figure and the one the verdict reads. Intervals: {level:.0%} bootstrap percentiles over trial resamples. R² is in the "
               f"space named; RMSE is in {groups[0].metric.label} units. Extrapolation: refitted on the lower two "
               f"thirds of log-compute, error on the frontier points above (bias = mean of predicted - observed).")
    return Table(header, tuple(rows), caption)


def _fit_cells(result: FormResult, group: GroupResult) -> tuple[str, ...]:
    if result.fit is None:
        return (result.problem or "not fitted", "—", "—", "—", "—", "")
    form = FORMS[result.form]
    params = "; ".join(_parameter(form.parameter(name), result.fit.params[name], result.intervals.get(name))
                       for name in result.fit.params)
    notes = [f"{form.parameter(n).shown}: {i.note}" for n, i in result.intervals.items() if i.note and not
             i.note.startswith("no interval")]
    for parameter in form.parameters:
        slope = result.intervals.get(parameter.name)
        if parameter.per_ln_compute and slope is not None and slope.low <= 0 <= slope.high:
            notes.append(f"{parameter.name}'s interval includes 0: no trend detectable")
    fitted, drawn = result.resamples
    if drawn:
        notes.append(f"{fitted}/{drawn} resamples fitted")
    goodness = result.goodness
    return (
        equation(result.form, result.fit.params, group.metric),
        params,
        f"{number(goodness.r2, 4)} ({goodness.r2_space})",
        number(goodness.rmse),
        _extrapolation(result),
        "; ".join(notes),
    )


def _parameter(parameter: Parameter, value: float, interval: Interval | None) -> str:
    text = f"{parameter.shown} = {number(value)}"
    if interval is not None and np.isfinite(interval.low):
        text += f" [{number(interval.low)}, {number(interval.high)}]" if interval.identified else " (not identified)"
    if parameter.per_ln_compute:
        text += f" ({number(value * np.log(10))} per decade)"
    return text


def _extrapolation(result: FormResult) -> str:
    check = result.extrapolation
    if check is None or not check.available:
        return check.message.removeprefix("no extrapolation check: ") if check else "—"
    points = "point" if check.num_heldout == 1 else "points"
    return (f"MAE {number(check.mean_abs_error)} ({check.mean_rel_error:.1%}) on {check.num_heldout} {points} "
            f"above {number(check.cutoff)}; bias {number(check.mean_error)}")


def saturation_table(groups: Sequence[GroupResult], unit: str) -> Table:
    header = ("Group", "Verdict", "Fitted change per decade at the end [interval] (form)", "Threshold",
              "Frontier", "Frontier's own change per decade (last window)", "Below threshold from")
    rows = []
    for group in groups:
        s, metric = group.saturation, group.metric
        frontier = (f"{decades_text(s.decades)}, {number(group.frontier.kept.compute[0])} to "
                    f"{number(group.frontier.end)} {unit}")
        trailing = (f"{signed(signed_change(s.trailing_gain, metric))} over {decades_text(s.trailing_decades)}"
                    if np.isfinite(s.trailing_gain) else "—")
        rows.append((group.group, s.verdict, _fitted_gain(group), f"{s.threshold:g}", frontier, trailing,
                     f"{number(s.saturation_compute)} {unit}" if s.saturation_compute else "—"))
    caption = (f"Verdicts on {groups[0].metric.label}: improving when the selected fit's change per decade at the "
               f"end of the explored compute is beyond the threshold over its whole interval, saturated when it is "
               f"below it over its whole interval, undetermined otherwise or when the frontier's own recent change "
               f"contradicts the fit (changes in {groups[0].metric.label} units; the sign is the metric's own).")
    return Table(header, tuple(rows), caption)


def _fitted_gain(group: GroupResult) -> str:
    gain = group.fitted_gain
    if gain is None:
        return f"— ({group.selection})"
    estimate, low, high = (signed_change(v, group.metric) for v in (gain.estimate, gain.low, gain.high))
    interval = f" [{min(low, high):+.2g}, {max(low, high):+.2g}]" if gain.has_interval else " (no interval)"
    return f"{estimate:+.3g}{interval} ({gain.form})"


def trial_summary(study: Study) -> pd.DataFrame:
    """One row per trial, by trial id: its last evaluation's identity, status, size and progress, its axes, its count
    of evaluations."""
    last = last_evaluations(study.table).set_index(schema.TRIAL_ID)
    summary = last[[schema.MODEL, schema.FAMILY, schema.STATUS, schema.FAILURE_REASON, schema.SEED, schema.TASK,
                    schema.DATASET, schema.STEP, schema.PF_DAYS, schema.FLOPS, schema.PARAMS_EMBEDDING,
                    schema.PARAMS_NON_EMBEDDING, schema.WALL_SECONDS] + col.varying_axes(study.table)].copy()
    summary["evaluations"] = study.table.groupby(schema.TRIAL_ID, sort=True).size()
    # a completed trial's MFU sits on its final row; tables written before trials measured it have no column
    summary[schema.MFU] = last[schema.MFU] if schema.MFU in last.columns else np.nan
    return summary


def trials_table(study: Study, headline: dict[tuple[str, str], col.Metric | None]) -> Table:
    summary = trial_summary(study)
    axes = col.varying_axes(study.table)
    header = ("Trial", "Model", "Family", "Status", "Dataset", *[a.split(".")[-1] for a in axes], "Seed", "Evals",
              "Steps", study.options.unit, "Params (emb / non-emb)", "Wall", "MFU", "Best valid")
    best_values = {metric.column: best_per_trial(study.table, metric.column)
                   for metric in headline.values() if metric is not None}
    rows = []
    order = [schema.DATASET, schema.FAMILY, schema.MODEL, study.options.compute]
    for trial_id, row in summary.sort_values(order).iterrows():
        metric = headline.get((row[schema.TASK], row[schema.DATASET]))
        best = "—" if metric is None else _best_valid(best_values[metric.column][trial_id], metric)
        rows.append((str(trial_id), row[schema.MODEL], row[schema.FAMILY], row[schema.STATUS], row[schema.DATASET],
                     *[_cell(row[a]) for a in axes], str(row[schema.SEED]), str(row["evaluations"]),
                     _steps(row[schema.STEP]), number(row[study.options.compute]),
                     f"{number(row[schema.PARAMS_EMBEDDING])} / {number(row[schema.PARAMS_NON_EMBEDDING])}",
                     _duration(row[schema.WALL_SECONDS]), _percent(row[schema.MFU]), best))
    caption = ("Every trial at its last evaluation; 'MFU': a completed trial's training FLOP/s over its device's peak "
               "at its precision (a datasheet figure on GPUs, a measured matmul peak on CPUs); 'Best valid' is the "
               "dataset's headline metric.")
    return Table(header, tuple(rows), caption)


def _best_valid(value: float, metric: col.Metric) -> str:
    return "—" if pd.isna(value) else f"{metric.label} {number(value, 4)}"


def _cell(value: object) -> str:
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    return number(float(value)) if numeric else str(value)


def _steps(value: object) -> str:
    """A step count as written, or a dash for a trial that failed before its first evaluation (no step)."""
    return "—" if pd.isna(value) else str(value)


def _percent(fraction: float) -> str:
    """A fraction as a percentage with two significant digits, or a dash when unknown."""
    return "—" if pd.isna(fraction) else f"{100 * fraction:.2g}%"


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "—"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def failures_list(study: Study) -> Bullets | None:
    summary = trial_summary(study)
    failed = summary[~summary[schema.STATUS].isin(schema.USABLE_STATUSES)]
    if failed.empty:
        return None
    items = []
    for trial_id, row in failed.iterrows():
        reason = row[schema.FAILURE_REASON]
        reason = str(reason).strip() if isinstance(reason, str) and reason.strip() else "no reason recorded"
        last = (f"last evaluation at step {row[schema.STEP]}, {number(row[study.options.compute])} {study.options.unit}"
                if pd.notna(row[schema.STEP]) else "before its first evaluation")
        items.append(f"{trial_id} ({row[schema.MODEL]}, {row[schema.FAMILY]}, {row[schema.DATASET]}): "
                     f"{row[schema.STATUS]}: {reason} ({last})")
    return Bullets(tuple(items))


@dataclass(frozen=True)
class Table4Data:
    """Table 4's numbers for one (task, dataset): one row per model configuration, means over its seeds."""

    configs: pd.DataFrame  # label, model, varying axes, trials, compute, _selection, each metric and total column
    metrics: list[col.Metric]  # the metric columns shown, in the paper's order
    baseline: int | None  # row of ``configs`` the gains are relative to
    selection: col.Metric  # the validation metric the baseline configuration was chosen on
    split_note: str  # where the metrics come from (test at the best checkpoint, or best validation)


def table4_data(table: pd.DataFrame, task: str, dataset: str, baseline_model: str | None,
                selection: col.Metric | None, compute: str = schema.PF_DAYS,
                totals: Sequence[str] = ()) -> Table4Data | None:
    """Each configuration's test metrics (at its best-validation checkpoint), and the baseline they are compared to.

    The baseline is ``baseline_model``'s configuration with the best mean validation ``selection`` metric
    (chosen on validation, never on the test metrics it is compared on). ``totals`` are further per-trial
    columns of the final row (training time, passes) averaged the same way.
    """
    rows = table[(table[schema.TASK] == task) & (table[schema.DATASET] == dataset)
                 & (table[schema.STATUS] == schema.COMPLETED)]
    if rows.empty:
        return None
    finals = last_evaluations(rows)
    metrics = _table4_metrics(finals, "test")
    split_note = "test metrics at each trial's best-validation checkpoint"
    if not metrics:
        metrics = _table4_metrics(rows, "valid")
        finals = _best_valid_rows(rows, metrics)
        split_note = "no test metrics recorded: best validation values instead"
    if not metrics:
        return None
    axes = col.varying(rows, col.varying_axes(table))
    selection = selection or metrics[0]
    finals = finals.assign(_selection=finals[schema.TRIAL_ID].map(best_per_trial(rows, selection.column)))
    aggregations = {c: (c, "mean") for c in [*(m.column for m in metrics), *(t for t in totals if t in finals)]}
    configs = (finals.groupby([schema.MODEL, *axes], sort=True, dropna=False)
               .agg(trials=(schema.TRIAL_ID, "nunique"), compute=(compute, "mean"),
                    _selection=("_selection", "mean"), **aggregations)
               .reset_index())
    varying = axes_varying_per_model(finals, axes)
    labels = []
    for _, config in configs.iterrows():
        settings = ", ".join(f"{a.split('.')[-1]}={_cell(config[a])}" for a in varying[config[schema.MODEL]])
        labels.append(config[schema.MODEL] + (f" ({settings})" if settings else ""))
    configs.insert(0, "label", labels)
    return Table4Data(configs, metrics, _baseline_index(configs, selection, task, baseline_model), selection,
                      split_note)


def table4(table: pd.DataFrame, task: str, dataset: str, baseline_model: str | None,
           selection: col.Metric | None, compute: str = schema.PF_DAYS, unit: str = "PF-days") -> Table | None:
    """Table 4 style: each configuration's test metrics, gains vs the baseline configuration in parentheses."""
    data = table4_data(table, task, dataset, baseline_model, selection, compute)
    return None if data is None else table4_block(data, task, dataset, unit)


def table4_block(data: Table4Data, task: str, dataset: str, unit: str) -> Table:
    configs, baseline, selection = data.configs, data.baseline, data.selection
    body = []
    for index, config in configs.iterrows():
        cells = [_with_gain(config[m.column], None if baseline in (None, index) else configs.loc[baseline, m.column])
                 for m in data.metrics]
        body.append((config["label"], str(config["trials"]), number(config["compute"]), *cells))
    reference = "none (no baseline model here; pass --baseline MODEL)" if baseline is None else body[baseline][0]
    caption = (f"{dataset} ({task}): {data.split_note}, mean over seeds; relative change against the baseline "
               f"{reference} (its model's best configuration on {selection.label} ({selection.split})) in "
               f"parentheses; for NE, negative is better.")
    header = ("Model (configuration)", "Trials", unit,
              *[f"{m.label} {'↑' if m.higher_is_better else '↓'}" for m in data.metrics])
    return Table(header, tuple(body), caption)


def _table4_metrics(rows: pd.DataFrame, split: str) -> list[col.Metric]:
    metrics = []
    for column in col.metric_columns(rows):
        if column.startswith(f"{split}/") and rows[column].notna().any():
            try:
                metrics.append(col.parse_metric(column))
            except AnalysisError:
                continue  # a metric analysis does not know; Table 4 lists only known ones
    return sorted(metrics, key=lambda m: (_TABLE4_ORDER.get(m.base, len(_TABLE4_ORDER)), m.task or "", m.cutoff or 0))


def _best_valid_rows(rows: pd.DataFrame, metrics: list[col.Metric]) -> pd.DataFrame:
    """Per trial, the row where its first metric is best."""
    if not metrics:
        return rows.head(0)
    first = metrics[0]
    ordered = rows.dropna(subset=[first.column]).sort_values(first.column, ascending=not first.higher_is_better)
    return ordered.groupby(schema.TRIAL_ID, sort=True).head(1)


def _baseline_index(configs: pd.DataFrame, selection: col.Metric, task: str, baseline_model: str | None) -> int | None:
    """The baseline model's best configuration on the selection metric (the paper's SASRec row)."""
    for model in (baseline_model,) if baseline_model else DEFAULT_BASELINES.get(task, ()):
        candidates = configs.loc[configs[schema.MODEL] == model, "_selection"].dropna()
        if not candidates.empty:
            return int(candidates.idxmax() if selection.higher_is_better else candidates.idxmin())
    return None


def _with_gain(value: float, reference: float | None) -> str:
    text = number(value, 4)
    if reference is None or not np.isfinite(value) or not np.isfinite(reference) or reference == 0:
        return text
    return f"{text} ({value / reference - 1:+.1%})"


def seed_table(spreads: Sequence[SeedSpread], metric: col.Metric, dataset: str) -> Table:
    """Per model, the seed-to-seed range at one configuration next to the size effect, in metric units."""
    header = ("Model", "Family", "Configurations with repeated seeds", "Seeds each", "Seed range (mean)",
              "Seed range (largest)", "Size effect (largest vs smallest, + better)", "|Size effect| / seed range",
              "Best - worst configuration")
    rows = tuple((s.model, s.family, str(s.configurations), str(s.seeds), number(s.mean_range, 3),
                  number(s.max_range, 3), signed(s.size_effect, 3), f"{s.ratio:.1f}x", number(s.configuration_range, 3))
                 for s in spreads)
    caption = (f"{dataset}: {metric.label} ({metric.split}) at each trial's last evaluation. Seed range: max - min "
               f"across the seeds of one configuration (same data, other initialisation and order); size effect: how "
               f"much better the seed-mean of the configuration that used the most compute is than that of the one "
               f"that used the least (negative: larger is worse).")
    return Table(header, rows, caption)


def seed_sentence(spreads: Sequence[SeedSpread], metric: col.Metric) -> str | None:
    """The headline's one sentence on seed noise against the size effect."""
    if not spreads:
        return None
    parts = [f"{s.model} {number(s.mean_range, 2)}, against a size effect (largest vs smallest configuration, + better) "
             f"of {signed(s.size_effect, 2)} ({s.ratio:.1f}x the seed range)" for s in spreads]
    return f"seed-to-seed range of {metric.label} at one configuration: " + "; ".join(parts)
