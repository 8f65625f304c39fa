"""The results table as the analysis reads it: its metrics as the report names them, and the checks it must pass.

The contract itself (column names and kinds, statuses, the PF-day, metric column names and their
direction, which columns are axes) is :mod:`core.results_schema`, shared with the sweep that writes
the table; the analysis reads those names from there. This module adds what only the analysis
needs: display labels, the quantity the power laws describe, the default thresholds, and the checks
a table must pass before anything is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from core import results_schema as schema

# metrics bounded in [0, 1] whose error 1 - metric is what a power law describes
BOUNDED_SCORES = schema.HIGHER_IS_BETTER

# change per decade of compute below which a frontier counts as flat; HR and NE are the paper's
# Figure 7 caption ("+0.005 in HR and -0.001 in NE represent significant improvements")
DEFAULT_THRESHOLDS: dict[str, float] = {
    "hr": 0.005,
    "ne": 0.001,
    "ndcg": 0.005,
    "mrr": 0.005,
    "auc": 0.001,
    "log_pplx": 0.01,
    "loss": 0.01,
}

_DISPLAY_NAMES = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR", "auc": "AUC", "ne": "NE",
                  "log_pplx": "log-perplexity", "loss": "loss"}


@dataclass(frozen=True)
class Metric(schema.Metric):
    """A metric column (:class:`core.results_schema.Metric`) with what the report and the fits say about it."""

    @property
    def label(self) -> str:
        """Short human name: ``HR@100``, ``NE (click)``."""
        name = _DISPLAY_NAMES[self.base] + (f"@{self.cutoff}" if self.cutoff is not None else "")
        return f"{name} ({self.task})" if self.task else name

    @property
    def fit_label(self) -> str:
        """The quantity the power laws describe: the metric itself, or its error ``1 - metric``."""
        return f"1 - {self.label}" if self.base in BOUNDED_SCORES else self.label

    @property
    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.base]


def parse_metric(column: str) -> Metric:
    """Parse ``split/metric[@k][/task]``; raise if the direction (higher or lower is better) is unknown."""
    parsed = schema.parse_metric(column)
    if parsed is None:
        raise AnalysisError(f"cannot analyse metric '{column}': expected {schema.METRIC_FORMAT}")
    return Metric(parsed.column, parsed.split, parsed.base, parsed.cutoff, parsed.task)


def normalize_metric_name(name: str) -> str:
    """``hr@100`` -> ``valid/hr@100``: a metric named without a split means its validation value."""
    name = name.strip().lower()
    return name if name.split("/", 1)[0] in schema.SPLITS else f"valid/{name}"


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [column for column in table.columns if schema.is_metric_column(str(column))]


def varying(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The ``columns`` that take more than one value in ``table`` (a missing value counts as one)."""
    return [c for c in columns if table[c].nunique(dropna=False) > 1]


def varying_axes(table: pd.DataFrame) -> list[str]:
    """Sweep-axis columns (dotted config keys, see ``core.results_schema.is_axis_column``) that vary in the table."""
    return varying(table, schema.axis_columns(table.columns))


def validate_results(table: pd.DataFrame, source: str) -> None:
    """Raise :class:`AnalysisError` naming the first way ``table`` breaks the contract; ``source`` names the file."""
    missing = [column for column in schema.REQUIRED_COLUMNS if column not in table.columns]
    if missing == [schema.EVAL_SET]:
        raise AnalysisError(f"{source} has no '{schema.EVAL_SET}' column: it was written before evaluations recorded "
                            f"which events they scored, so its frontiers may mix evaluations on different data; rerun "
                            f"the sweep with this version")
    if missing:
        raise AnalysisError(
            f"{source} lacks required columns {', '.join(missing)}; is it a sweep's results table?"
        )
    if table.empty:
        raise AnalysisError(f"{source} has no rows: the sweep has not reported any evaluation yet")
    _check_kinds(table, source)
    _check_values(table, source)
    _check_per_trial(table, source)
    _check_compute(table, source)
    if not metric_columns(table):
        raise AnalysisError(f"{source} has no metric columns (split/metric, e.g. valid/hr@100 or valid/ne)")


def _check_kinds(table: pd.DataFrame, source: str) -> None:
    for column in schema.REQUIRED_COLUMNS:
        values, kind = table[column], schema.COLUMN_KINDS[column]
        if kind == schema.NUMBER and not pd.api.types.is_numeric_dtype(values):
            raise AnalysisError(f"{source}: column '{column}' must be numeric; got dtype {values.dtype}")
        if kind == schema.TEXT and values.isna().any():
            raise AnalysisError(f"{source}: column '{column}' has {int(values.isna().sum())} empty values")
    for column in metric_columns(table):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise AnalysisError(f"{source}: metric column '{column}' must be numeric; got dtype {table[column].dtype}")


def _check_values(table: pd.DataFrame, source: str) -> None:
    for column, allowed in ((schema.STATUS, schema.STATUSES), (schema.TASK, schema.TASKS)):
        unknown = sorted(set(table[column].astype(str)) - set(allowed))
        if unknown:
            raise AnalysisError(
                f"{source}: column '{column}' has unknown values {unknown}; allowed: {', '.join(allowed)}"
            )


def _check_per_trial(table: pd.DataFrame, source: str) -> None:
    for column in schema.PER_TRIAL_COLUMNS:
        counts = table.groupby(schema.TRIAL_ID, sort=True)[column].nunique(dropna=False)
        inconsistent = counts[counts > 1]
        if not inconsistent.empty:
            raise AnalysisError(
                f"{source}: trial '{inconsistent.index[0]}' has several values of '{column}'; "
                f"each trial must repeat one value on all its rows"
            )


def _check_compute(table: pd.DataFrame, source: str) -> None:
    flops = table[schema.FLOPS].to_numpy(dtype=float)
    pf_days = table[schema.PF_DAYS].to_numpy(dtype=float)
    if np.any(flops < 0):
        raise AnalysisError(f"{source}: column 'flops' has negative values; it must be cumulative training FLOPs")
    both = np.isfinite(flops) & np.isfinite(pf_days)
    expected = schema.pf_days(flops[both])
    off = ~np.isclose(pf_days[both], expected, rtol=1e-3, atol=1e-30)
    if off.any():
        first = int(np.flatnonzero(both)[np.argmax(off)])
        per_pf_day = f"{schema.FLOPS_PER_PF_DAY:.3g}".replace("e+", "e")  # 8.64e19
        raise AnalysisError(
            f"{source}: pf_days must equal flops / {per_pf_day}, but {int(off.sum())} rows disagree "
            f"(e.g. row {first}: flops={flops[first]:.4g}, pf_days={pf_days[first]:.4g})"
        )
