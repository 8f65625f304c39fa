"""Per-trial views of a results table: each trial's last evaluation and its best value of a metric.

One implementation for the report's trial tables and for ``scaling results`` (which imports it:
``scaling`` may read the analysis, never the other way round).
"""

from __future__ import annotations

import pandas as pd

from core import results_schema as schema


def last_evaluations(table: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last row (its latest evaluation, or the one row of a trial that never evaluated), by trial id."""
    ordered = table.sort_values([schema.TRIAL_ID, schema.STEP])
    return ordered.groupby(schema.TRIAL_ID, sort=True).tail(1)


def best_per_trial(table: pd.DataFrame, column: str) -> pd.Series:
    """Trial id -> the trial's best value of metric ``column`` (the largest or the smallest, as the metric wants)."""
    values = table.groupby(schema.TRIAL_ID, sort=True)[column]
    return values.max() if schema.higher_is_better(column) else values.min()
