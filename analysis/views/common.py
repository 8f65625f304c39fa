"""What the views share: their options and output, each trial's final row, seed means, cells and orderings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.errors import AnalysisError
from analysis.render import Block
from analysis.trials import last_evaluations
from core import results_schema as schema

NOT_COMPLETED = ("diverged", "failed", "running")  # shown in a cell, in this order, when no trial completed


@dataclass(frozen=True)
class ViewOptions:
    baseline: str | None = None  # table4: the model whose best configuration the gains are against
    compute: str = schema.PF_DAYS  # table4: compute column shown
    unit: str = "PF-days"


@dataclass(frozen=True)
class ViewOutput:
    blocks: tuple[Block, ...]  # rendered to OUT/NAME.md
    frame: pd.DataFrame  # written to OUT/NAME.csv


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last row (:func:`analysis.trials.last_evaluations`), in the table's (sweep) order: test metrics
    and totals of a completed trial are there."""
    return last_evaluations(table).sort_index().reset_index(drop=True)


def require_columns(table: pd.DataFrame, columns: Sequence[str], view: str, hint: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AnalysisError(f"view '{view}' needs the column(s) {', '.join(missing)} in the results table; {hint}")


def seed_means(finals: pd.DataFrame, keys: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Per ``keys``, the mean of ``columns`` over completed trials (seeds), with ``trials`` and an ``outcome``.

    ``outcome`` is "completed" when at least one trial completed, else the worst status among them
    (diverged, failed, running), which a cell shows in place of a missing value. Each column also gets
    ``COLUMN range``, its max - min over the completed seeds (NaN with fewer than two). Keys keep their
    order of first appearance; columns absent from the table are NaN.
    """
    rows = []
    for key, trials in finals.groupby(list(keys), sort=False, dropna=False):
        done = trials[trials[schema.STATUS] == "completed"]
        statuses = set(trials[schema.STATUS])
        outcome = "completed" if not done.empty else next((s for s in NOT_COMPLETED if s in statuses), "failed")
        values = {c: float(pd.to_numeric(done[c], errors="coerce").mean()) if c in done and not done.empty
                  else math.nan for c in columns}
        values |= {f"{c} range": _seed_range(done, c) for c in columns}
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "trials": len(trials),
                     "completed": len(done), "outcome": outcome, **values})
    return pd.DataFrame(rows, columns=[*keys, "trials", "completed", "outcome", *columns, *(f"{c} range" for c in columns)])


def _seed_range(done: pd.DataFrame, column: str) -> float:
    values = pd.to_numeric(done[column], errors="coerce").dropna() if column in done else pd.Series(dtype=float)
    return float(values.max() - values.min()) if len(values) >= 2 else math.nan


def seed_spread_sentence(stats: pd.DataFrame, columns: Mapping[str, str]) -> str:
    """How far seeds of one row fall apart, per column (label -> results column), so a reader knows which gaps are noise."""
    parts = [f"{label} up to {stats[f'{column} range'].max():.4g}" for label, column in columns.items()
             if stats[f"{column} range"].notna().any()]
    if not parts:
        return "One seed per row: no seed spread to compare the gaps between rows with (add seeds: --set seeds=[1,2])."
    seeds = int(stats["completed"].max())
    return (f"Seed spread (max - min over the up to {seeds} completed seeds of a row): {', '.join(parts)}; "
            "rows whose means differ by less than that are not separated by this study.")


def fixed(value: float, digits: int = 4, outcome: str = "completed") -> str:
    """``0.0442``; a missing value reads as its trial's outcome (``diverged``) or an em dash."""
    if value is None or not math.isfinite(value):
        return outcome if outcome != "completed" else "—"
    return f"{value:.{digits}f}"


def count(value: float) -> str:
    """``100,096``; NaN as an em dash."""
    return "—" if value is None or not math.isfinite(value) else f"{int(round(value)):,}"


def relative_change(value: float, reference: float, digits: int = 1) -> str:
    """`` (+8.6%)`` of ``value`` over ``reference``; empty when either is missing or the reference is 0."""
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return ""
    return f" ({100 * (value / reference - 1):+.{digits}f}%)"


def best_first(values: Mapping[str, float], higher_is_better: bool) -> list[str]:
    """The names of the finite values, best first (ties keep their given order)."""
    finite = [(name, value) for name, value in values.items() if math.isfinite(value)]
    return [name for name, _ in sorted(finite, key=lambda item: -item[1] if higher_is_better else item[1])]


def ranks(values: Mapping[str, float], higher_is_better: bool) -> dict[str, int]:
    """1 for the best finite value, 2 for the next...; names without a finite value have no rank."""
    return {name: place for place, name in enumerate(best_first(values, higher_is_better), start=1)}


def kendall_tau(ours: Sequence[str], theirs: Sequence[str]) -> float:
    """Kendall's tau between two best-first orderings, over the names both rank (NaN under two)."""
    common = [name for name in ours if name in theirs]
    if len(common) < 2:
        return math.nan
    position = {name: theirs.index(name) for name in common}
    pairs = [(a, b) for i, a in enumerate(common) for b in common[i + 1:]]
    agree = sum(position[a] < position[b] for a, b in pairs)
    return (2 * agree - len(pairs)) / len(pairs)


def ordering_sentence(metric: str, labels: Mapping[str, str], ours: Sequence[str], paper: Sequence[str]) -> str:
    """One line comparing our best-first order of ``metric`` with the paper's, and Kendall's tau between them."""
    tau = kendall_tau(ours, paper)
    agreement = "—" if not math.isfinite(tau) else f"{tau:+.2f}"
    return (f"{metric}, best first: ours {' > '.join(labels[n] for n in ours) or '—'}; paper "
            f"{' > '.join(labels[n] for n in paper)}; Kendall's tau over the rows both rank {agreement} "
            f"(+1 same order, -1 reversed).")
