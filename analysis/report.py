"""Turn a results folder into a report folder: report.md, report.html, fits.json and the figures (PNG and SVG).

The report is built in a hidden sibling folder and moved into place only once complete, so an error
never leaves a half-written report (and never destroys the previous one).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from analysis import columns as col
from analysis import figures, tables
from analysis.errors import AnalysisError
from analysis.formatting import number
from analysis.forms import FORMS, equation, forms_sentence, methods_sentence
from analysis.isoflop_report import headline_columns, isoflop_blocks
from analysis.load import load_results
from analysis.render import Block, Bullets, Figure, Heading, Paragraph, to_html, to_markdown
from analysis.saturation import compare_at_common_compute
from analysis.seeds import seed_spreads
from analysis.study import GroupResult, Options, Study, indistinguishable, primary_metric, run_study
from core import results_schema as schema
from core.files import check_output_folder

REPORT_FILES = ("report.md", "report.html", "fits.json")
FIGURES_DIR = "figures"
FITS_SCHEMA = "gr-scaling/fits/v2"


def default_out(results: Path) -> Path:
    """RESULTS_DIR/report (next to the file when given results.parquet itself)."""
    return (results.parent if results.is_file() else results) / "report"


def analyze(results: Path, out: Path | None, options: Options, baseline: str | None = None) -> Path:
    """Analyse the sweep at ``results`` and write the report folder; return its path."""
    table = load_results(results)
    if baseline is not None and baseline not in set(table[schema.MODEL]):
        raise AnalysisError(f"--baseline '{baseline}' is not a model in the results; models: "
                            f"{', '.join(sorted(set(table[schema.MODEL])))}")
    target = out if out is not None else default_out(results)
    _check_replaceable(target)  # before the fits: a bad --out is found in a second, not after minutes
    if out is None:  # an explicit --out was checked with every command's output options
        warning = check_output_folder(target, "the default report folder")
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
    study = run_study(table, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        write_report(study, staging, source=str(results), baseline=baseline)
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_replaceable(target: Path) -> None:
    """Refuse to overwrite a folder that is not empty and is not a previous report."""
    if target.exists() and not target.is_dir():
        raise AnalysisError(f"--out {target} is a file; pass a folder for the report")
    if target.is_dir() and any(target.iterdir()) and not all((target / name).exists() for name in REPORT_FILES):
        raise AnalysisError(f"--out {target} exists and is not a report folder; choose another folder or empty it")


def _replace(staging: Path, target: Path) -> None:
    """Move the finished report into place; an older report is removed only after the swap."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(study: Study, folder: Path, source: str, baseline: str | None = None) -> None:
    """Write every report file of ``study`` into ``folder`` (which exists)."""
    figure_blocks = draw_figures(study, folder)
    o = study.options
    compute_optimal = isoflop_blocks(study.table, headline_columns(headlines(study)), folder, o.bootstrap, o.seed, o.level)
    blocks = report_blocks(study, figure_blocks, source, baseline, compute_optimal)
    title = f"Scaling report: {', '.join(sorted(set(study.table[schema.SWEEP].astype(str))))}"
    (folder / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (folder / "report.html").write_text(to_html(blocks, title, folder), encoding="utf-8")
    (folder / "fits.json").write_text(json.dumps(fits_document(study, source), indent=2, allow_nan=False) + "\n",
                                      encoding="utf-8")


def headlines(study: Study) -> dict[tuple[str, str], col.Metric | None]:
    return {key: primary_metric(metrics) for key, metrics in study.metrics.items()}


def verdict_lines(study: Study) -> list[str]:
    """The headline: per dataset, who keeps improving and who saturates on its headline metric, and who leads."""
    lines = []
    for (task, dataset), metric in headlines(study).items():
        if metric is None:
            lines.append(f"{dataset} ({task}): no analysed metric has values")
            continue
        groups = study.family_groups(task, dataset, metric.column)
        verdicts = "; ".join(f"{group.saturation.reason} [{_evidence(group)}]" for group in groups)
        lines.append(f"{dataset} ({task}), {metric.label} ({metric.split}): {verdicts}.")
        comparison = compare_at_common_compute({g.group: g.frontier for g in groups}, metric, study.options.unit)
        if comparison:
            lines.append(f"{dataset}: {comparison[0].upper()}{comparison[1:]}.")
        seeds = tables.seed_sentence(seed_spreads(_rows_of(study, task, dataset), metric), metric)
        if seeds:
            lines.append(f"{dataset}: {seeds[0].upper()}{seeds[1:]}.")
    return lines


def _evidence(group: GroupResult) -> str:
    """How much data a verdict rests on, so a reader can weigh it, and whether the forms could be told apart."""
    trials = f"{group.num_trials} trial{'s' if group.num_trials != 1 else ''}"
    rivals = group.fitted_gain.rivals if group.fitted_gain is not None else ()
    doubt = f"; {indistinguishable(name for name, _, _ in rivals)}" if rivals else ""
    return f"{trials}, {len(group.frontier.kept)} frontier points{doubt}"


def report_blocks(study: Study, figure_blocks: dict[str, list[Figure]], source: str,
                  baseline: str | None, compute_optimal: list[Block] | None = None) -> list[Block]:
    """The report, top to bottom; ``compute_optimal``: the IsoFLOP section of an IsoFLOP sweep (after the figures)."""
    sweeps = ", ".join(sorted(set(study.table[schema.SWEEP].astype(str))))
    blocks: list[Block] = [Heading(f"Scaling report: {sweeps}", 1), Paragraph(_overview(study, source)),
                           Heading("Headline"), Bullets(tuple(verdict_lines(study)))]
    blocks += _fit_sections(study, "family", "Fits per family")
    blocks += [Heading("Figures")]
    for key in ("scaling", "curves", "compute"):
        blocks += figure_blocks.get(key, [])
    blocks += compute_optimal or []
    blocks += _table4_section(study, baseline)
    blocks += _seed_section(study)
    blocks += _fit_sections(study, "model", "Fits per model")
    blocks += [Heading("Trials"), tables.trials_table(study, headlines(study))]
    failures = tables.failures_list(study)
    blocks += [Heading("Failures"), failures or Paragraph("No trial failed or diverged.")]
    blocks += [Heading("Method"), Bullets(_method(study))]
    return blocks


def _overview(study: Study, source: str) -> str:
    trials = study.table.drop_duplicates(schema.TRIAL_ID)
    statuses = trials[schema.STATUS].value_counts()
    counts = ", ".join(f"{int(statuses[s])} {s}" for s in schema.STATUSES if s in statuses)
    compute = study.usable[study.options.compute]
    notes = "".join(f" Note: {note}." for note in study.notes)
    return (f"Source: {source}. {len(trials)} trials ({counts}); {len(study.table)} evaluations; "
            f"models {', '.join(sorted(trials[schema.MODEL].unique()))}; compute of fitted trials from "
            f"{number(compute[compute > 0].min())} to {number(compute.max())} {study.options.unit}. "
            f"Fits use completed and running trials; failed and diverged trials are listed under Failures.{notes}")


def _fit_sections(study: Study, group_by: str, title: str) -> list[Block]:
    blocks: list[Block] = []
    for (task, dataset), metrics in study.metrics.items():
        for metric in metrics:
            groups = [g for g in study.groups if (g.task, g.dataset, g.metric.column, g.group_by) ==
                      (task, dataset, metric.column, group_by)]
            if not groups:
                continue
            blocks += [Heading(f"{dataset} ({task}): {metric.label} ({metric.split})", 3),
                       tables.fits_table(groups, study.options.level),
                       Bullets(tuple(f"{g.group}: {g.selection}." for g in groups)),
                       tables.saturation_table(groups, study.options.unit)]
    return [Heading(title), *blocks] if blocks else []


def _rows_of(study: Study, task: str, dataset: str):
    return study.usable[(study.usable[schema.TASK] == task) & (study.usable[schema.DATASET] == dataset)]


def _seed_section(study: Study) -> list[Block]:
    blocks: list[Block] = []
    for (task, dataset), metric in headlines(study).items():
        spreads = seed_spreads(_rows_of(study, task, dataset), metric) if metric is not None else []
        if spreads:
            blocks.append(tables.seed_table(spreads, metric, dataset))
    return [Heading("Seeds against size"), *blocks] if blocks else []


def _table4_section(study: Study, baseline: str | None) -> list[Block]:
    blocks: list[Block] = []
    for (task, dataset), metric in headlines(study).items():
        table = tables.table4(study.table, task, dataset, baseline, metric, study.options.compute,
                              study.options.unit)
        if table is not None:
            blocks.append(table)
    return [Heading("Test metrics (Table 4 style)"), *blocks] if blocks else []


def draw_figures(study: Study, folder: Path) -> dict[str, list[Figure]]:
    """Write every figure under ``folder``/figures and return their report blocks by kind."""
    out = folder / FIGURES_DIR
    blocks: dict[str, list[Figure]] = {"scaling": [], "curves": [], "compute": []}
    for (task, dataset), metrics in study.metrics.items():
        for metric in metrics:
            groups = study.family_groups(task, dataset, metric.column)
            if not groups:
                continue
            title = f"{dataset} ({task}): {metric.label} vs training compute"
            stem = out / f"scaling_{figures.slug(dataset)}_{figures.slug(metric.column)}"
            panel = figures.scaling_panel(groups, study.options.unit, title, oracle_floor(study, task, dataset, metric))
            blocks["scaling"].append(_save(panel, stem, folder, f"Figure 7 style, {title}: frontier points outlined, "
                                                                f"the law selected by AICc per family, its verdict"))
        if metrics:
            stem = out / f"curves_{figures.slug(dataset)}"
            blocks["curves"].append(_save(figures.learning_curves(study, task, dataset, metrics), stem, folder,
                                          f"{dataset}: per-trial metric against compute"))
    chart = figures.compute_chart(study.table, study.options.compute, study.options.unit)
    caption = "Figure 1 style: total training compute per trial (GPT-3 shown as a reference value)"
    blocks["compute"].append(_save(chart, out / "compute", folder, caption))
    return blocks


def oracle_floor(study: Study, task: str, dataset: str, metric: col.Metric) -> float | None:
    """The oracle's value of ``metric`` on the evaluation set of (task, dataset), when the data know it."""
    column = f"oracle/{metric.column.split('/', 1)[1]}"
    if column not in study.usable.columns:
        return None
    rows = study.usable[(study.usable[schema.TASK] == task) & (study.usable[schema.DATASET] == dataset)]
    values = rows[column].dropna().unique()
    return float(values[0]) if len(values) == 1 else None  # one evaluation set has one oracle value


def _save(figure, stem: Path, folder: Path, caption: str) -> Figure:
    png, svg = figures.save(figure, stem)
    return Figure(png.relative_to(folder).as_posix(), svg.relative_to(folder).as_posix(), caption)


def _method(study: Study) -> tuple[str, ...]:
    o = study.options
    thresholds = ", ".join(f"{base} {value:g}" for base, value in col.DEFAULT_THRESHOLDS.items())
    overrides = ", ".join(f"{k} {v:g}" for k, v in o.thresholds.items()) or "none"
    return (
        "Frontier: for each family (or model), every evaluation of every completed or running trial is a point "
        f"(compute in {o.unit}, validation metric). Kept points are those where the best-so-far envelope strictly "
        "improves, plus the envelope's value at the largest compute reached, so a flat tail counts.",
        forms_sentence(),
        methods_sentence(o.huber_delta),
        f"Intervals: {o.level:.0%} percentile bootstrap over {o.bootstrap} resamples of trials (seed {o.seed}); each "
        "resample rebuilds the frontier from the drawn trials and weights points by how often their trial was drawn. "
        "An interval is reported as not identified when there are fewer than 5 trials, when under 80% of resamples "
        "can be fitted, when the parameter piles up on a constraint, or when it spans more than 100x.",
        "Extrapolation: each form refitted on the frontier points in the lower two thirds of the log-compute range, "
        "and its error measured on the points above.",
        "Selection: the form with the lowest AICc (Hurvich & Tsai, 1989) on the frontier points, from residuals in the "
        "metric's own units, is drawn and judged; forms within 2 AICc of it are ones the data cannot tell apart, and "
        "the report says so. AICc needs k + 2 points for k parameters.",
        f"Verdict: from the selected form's change per decade at the end of the explored compute and its "
        f"{o.level:.0%} bootstrap interval: improving when the whole interval is at or beyond the threshold, saturated "
        f"when it is below, undetermined when it straddles it, has no trustworthy interval, when an indistinguishable "
        f"form disagrees, or when the frontier contradicts the fit: its own change over its last {o.window_decades:g} "
        f"decade (no fit) is on the other side of the threshold, or it made no new point over its last "
        f"{o.min_span_decades:g} decades while the fit says improving; frontiers spanning under "
        f"{o.min_span_decades:g} decades are not judged. Default "
        f"thresholds per decade: {thresholds} (HR and NE from the paper's Figure 7 caption); overrides: {overrides}.",
        "Evaluation sets: every row records the events its validation metrics scored (eval_set); rows scored on "
        "different sets are never put on one frontier. In the streaming regime every evaluation of a trial scores the "
        "same held-out window (never trained on), and test metrics come from the checkpoint best on it.",
    )


def fits_document(study: Study, source: str) -> dict:
    """Everything fitted, as plain JSON: per (dataset, metric, group) the frontier, fits and saturation."""
    o = study.options
    document = {
        "schema": FITS_SCHEMA,
        "source": source,
        "compute": {"column": o.compute, "unit": o.unit},
        "options": {"bootstrap": o.bootstrap, "seed": o.seed, "level": o.level, "huber_delta": o.huber_delta,
                    "window_decades": o.window_decades, "min_span_decades": o.min_span_decades,
                    "thresholds": dict(o.thresholds)},
        "headline": verdict_lines(study),
        "groups": [_group_document(group) for group in study.groups],
    }
    return _json_safe(document)


def _group_document(group: GroupResult) -> dict:
    metric, frontier, s = group.metric, group.frontier, group.saturation
    return {
        "dataset": group.dataset, "task": group.task, "metric": metric.column, "metric_label": metric.label,
        "higher_is_better": metric.higher_is_better, "power_law_quantity": metric.fit_label,
        "group_by": group.group_by, "group": group.group, "family": group.family,
        "num_trials": group.num_trials, "num_evaluations": len(group.points),
        "frontier": {"compute": frontier.kept.compute.tolist(), "value": frontier.kept.value.tolist(),
                     "trial_id": [str(t) for t in frontier.kept.trial_id], "end_compute": frontier.end,
                     "end_trial": frontier.end_trial, "tail_point_fitted": frontier.has_tail},
        "primary_form": group.primary,
        "fits": {form: _form_document(result, metric) for form, result in group.forms.items()},
        "saturation": {
            "verdict": s.verdict, "reason": s.reason, "threshold": s.threshold, "decades": s.decades,
            "gain_per_decade_last_window": s.trailing_gain, "last_window_decades": s.trailing_decades,
            "gain_per_decade_overall": s.overall_gain, "below_threshold_from": s.saturation_compute,
            "fitted_gain_per_decade_at_end": ({"estimate": group.fitted_gain.estimate, "low": group.fitted_gain.low,
                                               "high": group.fitted_gain.high, "form": group.primary}
                                              if group.fitted_gain else None),
        },
        "form_selection": group.selection,
    }


def _form_document(result, metric: col.Metric) -> dict:
    if result.fit is None:
        return {"fitted": False, "reason": result.problem}
    intervals = result.intervals
    check = result.extrapolation
    return {
        "fitted": True,
        "equation": equation(result.form, result.fit.params, metric),
        "params": {name: {"estimate": result.fit.params[name], "low": intervals[name].low, "high": intervals[name].high,
                          "identified": intervals[name].identified, "note": intervals[name].note}
                   for name in FORMS[result.form].names},
        "identified": result.identified,
        "bootstrap": {"fitted": result.resamples[0], "drawn": result.resamples[1]},
        "goodness": {"r2": result.goodness.r2, "r2_space": result.goodness.r2_space, "rmse": result.goodness.rmse,
                     "aicc": result.aicc},
        "extrapolation": {"available": check.available, "message": check.message, "cutoff_compute": check.cutoff,
                          "num_fit": check.num_fit, "num_heldout": check.num_heldout,
                          "mean_abs_error": check.mean_abs_error, "max_abs_error": check.max_abs_error,
                          "mean_rel_error": check.mean_rel_error, "mean_error": check.mean_error},
    }


def _json_safe(value):
    """NaN and infinities become null (JSON has neither); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def summary_line(target: Path) -> str:
    return f"report written to {target}/report.md (also report.html, fits.json, {FIGURES_DIR}/)"

