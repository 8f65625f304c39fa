"""The report's figures, each written as PNG and SVG: Figure 7-style scaling panels, learning curves, compute.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through pyplot, so no global
backend or figure registry is touched (the Agg canvas renders the PNG, the SVG canvas the SVG).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import columns as col
from analysis.forms import equation, predict_metric
from analysis.study import GroupResult, Study, family_rank
from core import results_schema as schema

# the paper's Figure 7: GRs as blue stars, DLRMs as red diamonds
FAMILY_STYLE = {
    schema.GR_FAMILY: {"color": "tab:blue", "marker": "*"},
    schema.DLRM_FAMILY: {"color": "tab:red", "marker": "D"},
}
_OTHER_STYLES = [{"color": c, "marker": m} for c, m in (("tab:green", "o"), ("tab:purple", "s"), ("tab:orange", "^"))]
# Brown et al. (2020), Table D.1: total training compute of GPT-3 175B; a reference point, not a result
GPT3_PF_DAYS = 3640.0
_RC = {"svg.hashsalt": "gr-scaling", "svg.fonttype": "none", "font.size": 9}
_DPI = 150


def slug(text: str) -> str:
    """A file-name-safe version of ``text``: ``valid/hr@100`` -> ``valid-hr-100``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def family_styles(families: Sequence[str]) -> dict[str, dict[str, str]]:
    others = cycle(_OTHER_STYLES)
    return {family: FAMILY_STYLE.get(family) or next(others) for family in sorted(families)}


def save(figure: Figure, stem: Path) -> tuple[Path, Path]:
    """Write ``stem``.png and ``stem``.svg; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with matplotlib.rc_context(_RC):
        # no bbox_inches="tight": every figure uses the constrained layout, and tight bounds cost a second draw
        figure.savefig(png, dpi=_DPI, metadata={"Software": None})
        figure.savefig(svg, metadata={"Date": None})
    return png, svg


def scaling_panel(groups: Sequence[GroupResult], unit: str, title: str, floor: float | None = None) -> Figure:
    """Figure 7 style: every evaluation faint, the frontier bold, each family's selected law and its verdict.

    ``floor`` is the data's own best possible value on the same evaluation set (the oracle of a
    synthetic stream), drawn as a horizontal line no model can cross.
    """
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(7.0, 5.6), layout="constrained")
        axes = figure.subplots()
        styles = family_styles([g.group for g in groups])
        for group in groups:
            _draw_family(axes, group, styles[group.group])
        metric = groups[0].metric
        if floor is not None:
            axes.axhline(floor, color="black", linestyle=":", linewidth=1.2,
                         label=f"oracle {metric.label} on this evaluation set (true probabilities): {floor:.4f}")
        axes.set_xscale("log")
        axes.set_xlabel(f"Training compute ({unit})")
        direction = "higher" if metric.higher_is_better else "lower"
        axes.set_ylabel(f"{metric.label} ({metric.split}, {direction} is better)")
        axes.set_title(_wrapped(title), fontsize=9)
        axes.grid(True, which="major", alpha=0.3)
        figure.legend(fontsize=7, loc="outside lower center", ncols=1)  # below: never over the points or the floor
    return figure


def _wrapped(title: str, width: int = 80) -> str:
    """A title that fits the panel: broken at the colon when it is too long for one line."""
    return title.replace(": ", ":\n", 1) if len(title) > width else title


def _draw_family(axes: Axes, group: GroupResult, style: dict[str, str]) -> None:
    color, marker = style["color"], style["marker"]
    size = 60 if marker == "*" else 28
    axes.scatter(group.points.compute, group.points.value, s=size * 0.4, marker=marker, color=color, alpha=0.22,
                 linewidths=0, label=f"{group.group}: all evaluations ({group.num_trials} trials)")
    kept = group.frontier.kept
    envelope_x = np.append(kept.compute, group.frontier.end)
    envelope_y = np.append(kept.value, kept.value[-1])
    axes.step(envelope_x, envelope_y, where="post", color=color, alpha=0.5, linewidth=0.8)
    axes.scatter(kept.compute, kept.value, s=size * 1.6, marker=marker, color=color, edgecolors="black",
                 linewidths=0.6, zorder=3, label=f"{group.group}: frontier ({len(kept)} points)")
    if group.primary is None:
        return
    fit = group.forms[group.primary]
    grid = np.logspace(np.log10(kept.compute[0]), np.log10(group.frontier.end), 200)
    r2 = fit.goodness.r2 if fit.goodness else float("nan")
    label = (f"{group.group} ({group.saturation.verdict}): {equation(fit.form, fit.fit.params, group.metric)} "
             f"(R²={r2:.3f}, lowest AICc)")
    trusted = group.fitted_gain is not None and group.fitted_gain.has_interval
    axes.plot(grid, predict_metric(fit.form, fit.fit.params, grid, group.metric), color=color, linewidth=1.8,
              linestyle="-" if trusted else "--", label=label + ("" if trusted else ", no trustworthy interval"))


def learning_curves(study: Study, task: str, dataset: str, metrics: Sequence[col.Metric]) -> Figure:
    """Each trial's metric against its compute, one panel per metric, coloured by model."""
    rows = study.usable[(study.usable[schema.TASK] == task) & (study.usable[schema.DATASET] == dataset)]
    models = sorted(rows[schema.MODEL].unique())
    colors = dict(zip(models, cycle(matplotlib.colormaps["tab10"].colors)))
    columns = min(len(metrics), 2)
    lines = -(-len(metrics) // columns)
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(6.0 * columns, 3.6 * lines), layout="constrained")
        panels = np.atleast_1d(figure.subplots(lines, columns, squeeze=False)).ravel()
        for axes, metric in zip(panels, metrics):
            _draw_curves(axes, rows, metric, colors, study.options.compute)
            axes.set_title(f"{metric.label} ({metric.split})")
            axes.set_xlabel(f"Training compute ({study.options.unit})")
        for axes in panels[len(metrics):]:
            axes.set_visible(False)
        handles = [Line2D([], [], color=colors[m], label=m) for m in models]
        handles += [Line2D([], [], color="grey", linestyle=s, label=f)
                    for f, s in ((schema.GR_FAMILY, "-"), (schema.DLRM_FAMILY, "--"))]
        figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)
        figure.suptitle(f"{dataset}: learning curves of every completed or running trial")
    return figure


def _draw_curves(axes: Axes, rows: pd.DataFrame, metric: col.Metric, colors: dict, compute: str) -> None:
    for _, trial in rows.groupby(schema.TRIAL_ID, sort=True):
        trial = trial.sort_values(schema.STEP)
        finite = trial[metric.column].notna() & (trial[compute] > 0)
        if not finite.any():
            continue
        style = "-" if trial[schema.FAMILY].iloc[0] == schema.GR_FAMILY else "--"
        axes.plot(trial.loc[finite, compute], trial.loc[finite, metric.column], style, marker=".", markersize=3,
                  linewidth=1.0, color=colors[trial[schema.MODEL].iloc[0]], alpha=0.8)
    axes.set_xscale("log")
    axes.grid(True, alpha=0.3)


def compute_chart(table: pd.DataFrame, compute: str, unit: str) -> Figure:
    """Figure 1 style: total training compute of every trial, by model, with GPT-3 as a labelled reference."""
    trials = (table.groupby(schema.TRIAL_ID, sort=True)
              .agg(model=(schema.MODEL, "first"), family=(schema.FAMILY, "first"), status=(schema.STATUS, "first"),
                   compute=(compute, "max")))
    trials = trials[trials["compute"] > 0]
    models = trials.groupby("model")["family"].first()
    ordered = sorted(models.index, key=lambda m: (family_rank(models[m]), m), reverse=True)  # GR on top
    positions = {model: index for index, model in enumerate(ordered)}
    styles = family_styles(trials["family"].unique())
    reference = GPT3_PF_DAYS if compute == schema.PF_DAYS else GPT3_PF_DAYS * schema.FLOPS_PER_PF_DAY
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(7.0, 1.6 + 0.45 * len(positions)), layout="constrained")
        axes = figure.subplots()
        usable = trials["status"].isin(schema.USABLE_STATUSES)
        for family, members in trials[usable].groupby("family", sort=False):
            label = f"{family}: {len(members)} trials, {members['compute'].sum():.2g} {unit} in total"
            axes.scatter(members["compute"], members["model"].map(positions), color=styles[family]["color"],
                         marker=styles[family]["marker"], s=45, label=label)
        if (~usable).any():
            broken = trials[~usable]
            axes.scatter(broken["compute"], broken["model"].map(positions), color="grey", marker="x", s=30,
                         label=f"failed or diverged: {len(broken)} trials")
        axes.axvline(reference, color="black", linestyle=":", linewidth=1)
        axes.annotate(f"reference: GPT-3 175B\n≈{reference:.3g} {unit}\n(Brown et al., 2020)", (reference, 0.5),
                      xycoords=("data", "axes fraction"), ha="right", va="center", fontsize=7,
                      xytext=(-4, 0), textcoords="offset points")
        axes.set_xscale("log")
        axes.set_yticks(list(positions.values()), [f"{m} ({models[m]})" for m in positions])
        axes.set_ylim(-0.7, len(positions) - 0.3)
        axes.set_xlabel(f"Total training compute per trial ({unit}, log scale)")
        axes.set_title("Training compute per trial (Figure 1 style)")
        axes.grid(True, axis="x", alpha=0.3)
        figure.legend(loc="outside lower center", ncols=3, fontsize=7)
    return figure
