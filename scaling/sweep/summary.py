"""A one-line-per-trial summary of a results table, for people (``scaling results``, end of a sweep)."""

from __future__ import annotations

import pandas as pd

from core.errors import UserError
from scaling.sweep.table import is_metric, metric_direction

# metrics shown when none are asked for: those of retrieval and of ranking that the table has
DEFAULT_METRICS = ("ndcg@10", "hr@10", "ne")
AXIS_EXCLUDED = ("data.task", "data.dataset")


def default_metrics(table: pd.DataFrame) -> list[str]:
    """The default metrics the table has (a sweep mixing retrieval and ranking shows both), else its first."""
    present = [m for m in DEFAULT_METRICS if f"valid/{m}" in table.columns]
    if present:
        return present
    return [c.split("/", 1)[1] for c in table.columns if c.startswith("valid/")][:1]


def varying_axes(table: pd.DataFrame) -> list[str]:
    """Axis columns (dotted keys) whose value differs between trials."""
    axes = [c for c in table.columns if "." in c and not is_metric(c) and c not in AXIS_EXCLUDED]
    return [c for c in axes if table[c].astype(str).nunique() > 1]


def trial_summary(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per trial: identity, varying axes, status, final progress, best valid and test metrics."""
    axes = varying_axes(table)
    show_seed = table["seed"].nunique() > 1
    rows = []
    for trial_id, rows_of_trial in table.groupby("trial_id", sort=False):
        last = rows_of_trial.iloc[-1]
        row = {"trial_id": trial_id, "group": last["group"], "model": last["model"], **{a: last[a] for a in axes}}
        if show_seed:
            row["seed"] = last["seed"]
        row.update({"status": last["status"], "step": last["step"], "pf_days": last["pf_days"]})
        for metric in metrics:
            row[f"best valid/{metric}"] = _best(rows_of_trial, f"valid/{metric}")
            test = rows_of_trial.get(f"test/{metric}")
            row[f"test/{metric}"] = test.dropna().iloc[-1] if test is not None and test.notna().any() else float("nan")
        rows.append(row)
    summary = pd.DataFrame(rows)
    order = ["group", "model", *axes, *(["seed"] if show_seed else [])]
    return summary.sort_values(order, kind="stable", key=_sortable).reset_index(drop=True)


def _best(rows: pd.DataFrame, column: str) -> float:
    if column not in rows or rows[column].notna().sum() == 0:
        return float("nan")
    values = rows[column].dropna()
    return float(values.max() if metric_direction(column) > 0 else values.min())


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
    failures = table.drop_duplicates("trial_id")
    failures = failures[failures["status"].isin(["failed", "diverged"])]
    lines += [f"  {row.trial_id} {row.status}: {row.failure_reason}" for row in failures.itertuples()]
    return "\n".join(lines)

