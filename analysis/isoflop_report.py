"""The report's compute-optimal section: IsoFLOP profiles figure, allocation exponents, the joint law, and what is refused.

Drawn and written only for a table grouped by ``train.max_flops`` (an IsoFLOP sweep); any other
table gets no section. One figure per (task, dataset): a panel per sized axis, each budget's
final metrics against the axis, its fitted parabola and its optimum with the optimum's interval.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from analysis import figures
from analysis.formatting import number
from analysis.isoflop import BUDGET_AXIS, TOKENS, IsoflopStudy, Profile, analyse_isoflop
from analysis.joint_fit import JointFit, fit_joint
from analysis.render import Block, Bullets, Figure, Heading, Paragraph, Table
from core import results_schema as schema

AXIS_LABELS = {"data.max_seq_len": "sequence length (tokens)", "model.num_layers": "layers",
               "model.embedding_dim": "width (embedding dim)", "model.dlrm.hidden_dim": "DLRM hidden dim",
               schema.PARAMS_NON_EMBEDDING: "non-embedding parameters N", TOKENS: "tokens D = C / 6N"}


def is_isoflop_table(table: pd.DataFrame) -> bool:
    """Whether every trial of ``table`` has an equal-compute budget (``train.max_flops``)."""
    return BUDGET_AXIS in table.columns and table[BUDGET_AXIS].notna().all()


def isoflop_section(table: pd.DataFrame, metric: str, title: str, folder: Path, stem: Path,
                    replicates: int, seed: int, level: float) -> list[Block]:
    """Heading, figure, allocation table, joint law and refusals for one (task, dataset) of an IsoFLOP table."""
    study = analyse_isoflop(table, metric, replicates, seed, level)
    joint = fit_joint(table, metric, replicates, seed, level)
    blocks: list[Block] = [Heading(f"Compute-optimal allocation: {title}", 3)]
    if not study.budgets:
        return blocks + [Bullets(tuple(f"{r.subject}: {r.reason}." for r in study.refusals))]
    png, svg = figures.save(profiles_figure(study, title), stem)
    caption = (f"IsoFLOP profiles, {title}: each budget's final {metric} against each sized axis, the parabola in ln x "
               f"fitted per budget, its optimum (x) with its {level:.0%} interval")
    blocks += [Figure(png.relative_to(folder).as_posix(), svg.relative_to(folder).as_posix(), caption),
               allocation_table(study, level), joint_paragraph(joint, level)]
    refusals = [*study.refusals, *(p.refusal for p in study.profiles if p.refusal),
                *(a.refusal for a in study.allocations if a.refusal)]
    if refusals:
        blocks.append(Bullets(tuple(f"{r.subject}: {r.reason}." for r in refusals)))
    return blocks


def allocation_table(study: IsoflopStudy, level: float) -> Table:
    rows = []
    for allocation in study.allocations:
        optima = {p.budget: p.optimum for p in study.profiles if p.axis == allocation.axis}
        exponent = "refused" if allocation.exponent is None else f"{allocation.exponent:.3f}"
        interval = "not identified" if allocation.interval is None else \
            f"[{allocation.interval[0]:.3f}, {allocation.interval[1]:.3f}]"
        cells = [number(optima[b]) if optima.get(b) is not None else "-" for b in study.budgets]
        rows.append((AXIS_LABELS.get(allocation.axis, allocation.axis), *cells, exponent, interval))
    header = ("axis", *(f"x* at {number(b)} FLOPs" for b in study.budgets), "exponent e (x* ~ C^e)", f"{level:.0%} interval")
    return Table(header, tuple(rows), caption=f"Allocation exponents of {study.metric}: the optimum of each axis per "
                                               "budget and the slope of ln x* against ln C")


def joint_paragraph(joint: JointFit, level: float) -> Block:
    if joint.params is None or joint.refusal is not None and not joint.intervals:
        reason = joint.refusal.reason if joint.refusal else "no fit"
        return Paragraph(f"Joint law L(N, D) = E + A N^-α + B D^-β of {joint.metric}: not reported ({reason}).")
    verdict = f" Not identified: {joint.refusal.reason}." if joint.refusal is not None else ""
    p, i = joint.params, joint.intervals

    def shown(name: str) -> str:
        return f"{p[name]:.3g} [{i[name][0]:.3g}, {i[name][1]:.3g}]" if name in i else f"{p[name]:.3g}"

    return Paragraph(
        f"Joint law L(N, D) = E + A N^-α + B D^-β of {joint.metric} over {joint.num_points} evaluations of "
        f"{joint.num_trials} trials ({level:.0%} intervals): E = {shown('E')}, α = {shown('alpha')}, β = {shown('beta')}; "
        f"under C = 6ND, N* ~ C^{shown('n_exponent')} and D* ~ C^{shown('d_exponent')}.{verdict}")


def profiles_figure(study: IsoflopStudy, title: str) -> MplFigure:
    axes_names = list(dict.fromkeys(p.axis for p in study.profiles))
    colors = dict(zip(study.budgets, matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(study.budgets)))))
    columns = min(3, len(axes_names))
    rows = int(np.ceil(len(axes_names) / columns))
    with matplotlib.rc_context(figures._RC):
        figure = MplFigure(figsize=(3.4 * columns, 2.9 * rows + 0.6), layout="constrained")
        grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
        for axes, axis in zip(grid, axes_names):
            for profile in (p for p in study.profiles if p.axis == axis):
                _draw_profile(axes, profile, colors[profile.budget])
            allocation = next(a for a in study.allocations if a.axis == axis)
            exponent = "refused" if allocation.exponent is None else f"e = {allocation.exponent:.2f}"
            axes.set_xscale("log")
            axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels collide on short ranges
            axes.set_xlabel(AXIS_LABELS.get(axis, axis))
            axes.set_ylabel(study.metric)
            axes.set_title(f"{AXIS_LABELS.get(axis, axis)}: {exponent}", fontsize=8)
            axes.grid(True, alpha=0.3)
        for axes in grid[len(axes_names):]:
            axes.set_visible(False)
        handles = [matplotlib.lines.Line2D([], [], color=colors[b], marker="o", label=f"{number(b)} FLOPs")
                   for b in study.budgets]
        figure.legend(handles=handles, fontsize=7, loc="outside lower center", ncols=len(handles))
        figure.suptitle(f"IsoFLOP profiles: {title}", fontsize=9)
    return figure


def _draw_profile(axes, profile: Profile, color) -> None:
    axes.scatter(profile.x, profile.metric, color=color, s=14)
    if profile.coefficients is not None:
        grid = np.geomspace(profile.x.min(), profile.x.max(), 60)
        a, b, c = profile.coefficients
        axes.plot(grid, a * np.log(grid) ** 2 + b * np.log(grid) + c, color=color, linewidth=1)
    if profile.optimum is not None:
        a, b, c = profile.coefficients
        value = a * np.log(profile.optimum) ** 2 + b * np.log(profile.optimum) + c
        error = None if profile.interval is None else \
            [[profile.optimum - profile.interval[0]], [profile.interval[1] - profile.optimum]]
        axes.errorbar([profile.optimum], [value], xerr=error, color=color, marker="x", markersize=7, capsize=2)


def isoflop_blocks(table: pd.DataFrame, headline: dict[tuple[str, str], str | None], folder: Path,
                   replicates: int, seed: int, level: float) -> list[Block]:
    """The section for every (task, dataset) of an IsoFLOP table (nothing for any other table)."""
    if not is_isoflop_table(table):
        return []
    blocks: list[Block] = []
    for (task, dataset), metric in headline.items():
        if metric is None:
            continue
        rows = table[(table[schema.TASK] == task) & (table[schema.DATASET] == dataset)]
        stem = folder / "figures" / f"isoflop_{figures.slug(dataset)}_{figures.slug(metric)}"
        blocks += isoflop_section(rows, metric, f"{dataset} ({task}), {metric}", folder, stem, replicates, seed, level)
    return [Heading("Compute-optimal allocation (IsoFLOP)"), Paragraph(_method()), *blocks] if blocks else []


def _method() -> str:
    return ("Trials are grouped by their train.max_flops budget; each trial's last evaluation is its point. Per budget "
            "and sized axis, the metric is fitted as a parabola in ln x (Hoffmann et al. 2022, approach 2); its "
            "vertex, when it lies inside the values tried, is that budget's optimum. The exponent is the least-squares "
            "slope of ln x* on ln C over at least three budgets. Intervals resample trials within each budget. "
            "D = C / 6N (parameter-equivalent tokens), so the N and D exponents add up to 1. Refusals say what the "
            "design cannot identify.")


def headline_columns(headlines: dict[tuple[str, str], object]) -> dict[tuple[str, str], str | None]:
    """(task, dataset) -> the headline metric's column name."""
    return {key: getattr(metric, "column", None) for key, metric in headlines.items()}

