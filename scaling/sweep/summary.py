"""A one-line-per-trial summary of a results table, for people (``scaling results``, end of a sweep)."""

from __future__ import annotations

import pandas as pd

from analysis.columns import varying_axes
from analysis.trials import best_per_trial, last_evaluations
from core import results_schema as schema
from core.errors import UserError

# metrics shown when none are asked for: those of retrieval and of ranking that the table has
DEFAULT_METRICS = ("ndcg@10", "hr@10", "ne")


def default_metrics(table: pd.DataFrame) -> list[str]:
    """The default metrics the table has (a sweep mixing retrieval and ranking shows both), else its first."""
    present = [m for m in DEFAULT_METRICS if f"valid/{m}" in table.columns]
    if present:
        return present
    return [c.split("/", 1)[1] for c in table.columns if c.startswith("valid/")][:1]


def trial_summary(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per trial: identity, varying axes, status, final progress, best valid and test metrics."""
    axes = varying_axes(table)
    show_seed = table[schema.SEED].nunique() > 1
    shown = [schema.GROUP, schema.MODEL, *axes, *([schema.SEED] if show_seed else []), schema.STATUS, schema.STEP,
             schema.PF_DAYS]
    summary = last_evaluations(table).set_index(schema.TRIAL_ID)[shown].copy()
    trials = table.groupby(schema.TRIAL_ID, sort=True)
    for metric in metrics:
        summary[f"best valid/{metric}"] = best_per_trial(table, f"valid/{metric}")
        test = f"test/{metric}"
        summary[test] = trials[test].last() if test in table.columns else float("nan")  # the last value it has
    order = [schema.GROUP, schema.MODEL, *axes, *([schema.SEED] if show_seed else [])]
    return summary.reset_index().sort_values(order, kind="stable", key=_sortable).reset_index(drop=True)


def _sortable(column: pd.Series) -> pd.Series:
    """Sort numbers as numbers and everything else as text (None last)."""
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().all() else column.astype(str)


def format_summary(table: pd.DataFrame, metrics: list[str] | None = None) -> str:
    """The printable summary: the per-trial table, status counts and each failure's reason."""
    if table.empty:
        return "no trial has reported yet"
    chosen = [name.removeprefix("valid/").removeprefix("test/") for name in metrics] if metrics else default_metrics(table)
    unknown = [name for name in chosen if f"valid/{name}" not in table.columns]
    if unknown:
        known = ", ".join(c.split("/", 1)[1] for c in table.columns if c.startswith("valid/"))
        raise UserError(f"metric {unknown[0]!r} is not in the results table; choose one of {known}")
    summary = trial_summary(table, chosen)
    formatters = {"pf_days": lambda v: f"{v:.3g}" if pd.notna(v) else "-", "step": lambda v: "-" if pd.isna(v) else f"{int(v)}"}
    for column in summary.columns:
        if column.startswith(("best valid/", "test/")):
            formatters[column] = lambda v: f"{v:.4f}" if pd.notna(v) else "-"
    text = summary.to_string(index=False, formatters=formatters, na_rep="-")
    counts = summary["status"].value_counts()
    lines = [text, "", "trials: " + ", ".join(f"{counts[s]} {s}" for s in counts.index)]
    failures = table.drop_duplicates(schema.TRIAL_ID)
    failures = failures[failures[schema.STATUS].isin(schema.FAILED_STATUSES)]
    lines += [f"  {row.trial_id} {row.status}: {row.failure_reason}" for row in failures.itertuples()]
    return "\n".join(lines)

