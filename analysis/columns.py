"""The results-table contract: the one place analysis names the columns a sweep writes, and checks them.

A sweep writes ``RESULTS_DIR/results.parquet`` with one row per (trial, evaluation):

- identity: ``sweep``, ``trial_id``, ``model`` (hstu, sasrec, dlrm, ...), ``family`` ("GR" or "DLRM"),
  ``seed``; ``data.task`` ("retrieval", "gr_retrieval" or "ranking") and ``data.dataset``;
- the trial's final ``status`` ("completed", "failed", "diverged", "running") and ``failure_reason``
  (null unless it failed), repeated on each of its rows;
- progress at this evaluation: ``step`` (optimizer steps), ``epoch``, ``flops`` (cumulative training
  FLOPs), ``pf_days`` (= flops / (1e15 * 86400)), ``wall_seconds`` (cumulative);
- ``eval_set``: the identifier (``label:digest``) of the events the row's ``valid/`` metrics scored.
  Rows with different identifiers were measured on different data and never share a frontier;
  null only on the single row of a trial that failed before its first evaluation;
- size: ``params_embedding`` and ``params_non_embedding``;
- a completed trial's totals, on its final row only: ``best_epoch``, ``passes``, ``train_wall_seconds``,
  ``train_cpu_seconds``, ``sparsity``, ``s2``, ``targets_trained_fraction`` (read by the views, never fitted);
- one column per sweep axis, named by its dotted config key (``model.num_layers``, ``data.max_seq_len``);
- one column per metric, ``split/metric`` with split in {valid, test, train}: ``valid/hr@100``,
  ``valid/ndcg@10``, ``valid/mrr``, ``valid/log_pplx``, ``valid/ne`` (mean over tasks),
  ``valid/ne/<task>``, ``valid/auc/<task>``, ``train/loss``; ``oracle/...`` the data's true
  probabilities scored on the same set (synthetic data only: a floor no model can beat);
  ``progressive/...`` the next, not yet trained window (streaming, when asked for; never fitted).
  Test metrics are filled only on a trial's final row (from its best-validation checkpoint);
  missing metrics are NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

SWEEP = "sweep"
TRIAL_ID = "trial_id"
MODEL = "model"
FAMILY = "family"
STATUS = "status"
FAILURE_REASON = "failure_reason"
SEED = "seed"
STEP = "step"
EPOCH = "epoch"
FLOPS = "flops"
PF_DAYS = "pf_days"
PARAMS_EMBEDDING = "params_embedding"
PARAMS_NON_EMBEDDING = "params_non_embedding"
WALL_SECONDS = "wall_seconds"
EVAL_SET = "eval_set"
TASK = "data.task"
DATASET = "data.dataset"
GROUP = "group"
# a completed trial's totals, on its final row only (NaN elsewhere): the best checkpoint's epoch (or window),
# training passes, training seconds without evaluation (wall, process CPU), and the Table 3 sparsity and s2 of
# the sequences trained on with the share of supervised tokens Stochastic Length kept (NaN with SL off)
BEST_EPOCH = "best_epoch"
PASSES = "passes"
TRAIN_WALL_SECONDS = "train_wall_seconds"
TRAIN_CPU_SECONDS = "train_cpu_seconds"
SPARSITY = "sparsity"
S2 = "s2"
TARGETS_TRAINED_FRACTION = "targets_trained_fraction"

# column -> the kind of values it must hold
REQUIRED_COLUMNS: dict[str, str] = {
    SWEEP: "text",
    TRIAL_ID: "text",
    MODEL: "text",
    FAMILY: "text",
    STATUS: "text",
    FAILURE_REASON: "text or null",
    SEED: "number",
    STEP: "number",
    EPOCH: "number",
    FLOPS: "number",
    PF_DAYS: "number",
    PARAMS_EMBEDDING: "number",
    PARAMS_NON_EMBEDDING: "number",
    WALL_SECONDS: "number",
    EVAL_SET: "text or null",
    TASK: "text",
    DATASET: "text",
}
# columns whose value belongs to the trial, so every row of a trial must agree on it
PER_TRIAL_COLUMNS = (MODEL, FAMILY, STATUS, TASK, DATASET, SEED, EVAL_SET)

STATUSES = ("completed", "failed", "diverged", "running")
# trials whose evaluations are fitted; failed and diverged trials are listed as failures instead
USABLE_STATUSES = ("completed", "running")
TASKS = ("retrieval", "gr_retrieval", "ranking")
GR_FAMILY, DLRM_FAMILY = "GR", "DLRM"
COMPUTE_COLUMNS = (PF_DAYS, FLOPS)
FLOPS_PER_PF_DAY = 1e15 * 86400
SPLITS = ("valid", "test", "train", "oracle", "progressive")

HIGHER_IS_BETTER = frozenset({"hr", "ndcg", "mrr", "auc"})
LOWER_IS_BETTER = frozenset({"ne", "log_pplx", "loss"})
# metrics bounded in [0, 1] whose error 1 - metric is what a power law describes
BOUNDED_SCORES = HIGHER_IS_BETTER

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

_METRIC_PATTERN = re.compile(r"^(valid|test|train|oracle|progressive)/([a-z_]+)(?:@(\d+))?(?:/(.+))?$")
_DISPLAY_NAMES = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR", "auc": "AUC", "ne": "NE",
                  "log_pplx": "log-perplexity", "loss": "loss"}


@dataclass(frozen=True)
class Metric:
    """A parsed metric column name such as ``valid/hr@100`` or ``valid/ne/click``."""

    column: str
    split: str
    base: str
    cutoff: int | None
    task: str | None

    @property
    def higher_is_better(self) -> bool:
        return self.base in HIGHER_IS_BETTER

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


def is_metric_column(column: str) -> bool:
    return column.split("/", 1)[0] in SPLITS and "/" in column


def parse_metric(column: str) -> Metric:
    """Parse ``split/metric[@k][/task]``; raise if the direction (higher or lower is better) is unknown."""
    match = _METRIC_PATTERN.match(column)
    if match is None or match.group(2) not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        known = ", ".join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))
        raise AnalysisError(
            f"cannot analyse metric '{column}': expected split/name[@k][/task] with split in "
            f"{{{', '.join(SPLITS)}}} and name one of {known}"
        )
    split, base, cutoff, task = match.groups()
    return Metric(column, split, base, int(cutoff) if cutoff else None, task)


def normalize_metric_name(name: str) -> str:
    """``hr@100`` -> ``valid/hr@100``: a metric named without a split means its validation value."""
    name = name.strip().lower()
    return name if name.split("/", 1)[0] in SPLITS else f"valid/{name}"


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [column for column in table.columns if is_metric_column(str(column))]


def axis_columns(table: pd.DataFrame) -> list[str]:
    """Sweep-axis columns (dotted config keys) that vary across the table."""
    axes = [c for c in table.columns if "." in str(c) and "/" not in str(c) and c not in (TASK, DATASET)]
    return [c for c in axes if table[c].nunique(dropna=False) > 1]


def validate_results(table: pd.DataFrame, source: str) -> None:
    """Raise :class:`AnalysisError` naming the first way ``table`` breaks the contract; ``source`` names the file."""
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing == [EVAL_SET]:
        raise AnalysisError(f"{source} has no '{EVAL_SET}' column: it was written before evaluations recorded which "
                            f"events they scored, so its frontiers may mix evaluations on different data; rerun the "
                            f"sweep with this version")
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
    for column, kind in REQUIRED_COLUMNS.items():
        values = table[column]
        if kind == "number" and not pd.api.types.is_numeric_dtype(values):
            raise AnalysisError(f"{source}: column '{column}' must be numeric; got dtype {values.dtype}")
        if kind == "text" and values.isna().any():
            raise AnalysisError(f"{source}: column '{column}' has {int(values.isna().sum())} empty values")
    for column in metric_columns(table):
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise AnalysisError(f"{source}: metric column '{column}' must be numeric; got dtype {table[column].dtype}")


def _check_values(table: pd.DataFrame, source: str) -> None:
    for column, allowed in ((STATUS, STATUSES), (TASK, TASKS)):
        unknown = sorted(set(table[column].astype(str)) - set(allowed))
        if unknown:
            raise AnalysisError(
                f"{source}: column '{column}' has unknown values {unknown}; allowed: {', '.join(allowed)}"
            )


def _check_per_trial(table: pd.DataFrame, source: str) -> None:
    for column in PER_TRIAL_COLUMNS:
        counts = table.groupby(TRIAL_ID, sort=True)[column].nunique(dropna=False)
        inconsistent = counts[counts > 1]
        if not inconsistent.empty:
            raise AnalysisError(
                f"{source}: trial '{inconsistent.index[0]}' has several values of '{column}'; "
                f"each trial must repeat one value on all its rows"
            )


def _check_compute(table: pd.DataFrame, source: str) -> None:
    flops = table[FLOPS].to_numpy(dtype=float)
    pf_days = table[PF_DAYS].to_numpy(dtype=float)
    if np.any(flops < 0):
        raise AnalysisError(f"{source}: column 'flops' has negative values; it must be cumulative training FLOPs")
    both = np.isfinite(flops) & np.isfinite(pf_days)
    expected = flops[both] / FLOPS_PER_PF_DAY
    off = ~np.isclose(pf_days[both], expected, rtol=1e-3, atol=1e-30)
    if off.any():
        first = int(np.flatnonzero(both)[np.argmax(off)])
        raise AnalysisError(
            f"{source}: pf_days must equal flops / 8.64e19, but {int(off.sum())} rows disagree "
            f"(e.g. row {first}: flops={flops[first]:.4g}, pf_days={pf_days[first]:.4g})"
        )
