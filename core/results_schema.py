"""The results table's contract between its writer (``scaling/sweep``) and its reader (``analysis``).

Everything the two sides must agree on is spelled here once: where a sweep keeps its files, the
table's columns and their order, which columns hold integers, the trial statuses, the PF-day, the
metric splits and what a metric column's name means (including whether higher is better), and
which columns are sweep axes. Standard library only, so ``analysis`` imports it without pulling in
training code and ``scaling`` without pulling in the analysis.

A sweep keeps under ``STORAGE/NAME``: ``sweep.json`` (the manifest), ``trials/<trial_id>.json`` (one
record per trial) and ``results.parquet``, the table rebuilt from those two, one row per (trial,
evaluation), with these columns in this order:

- identity: ``sweep``, ``trial_id``, ``group`` (the sweep's group of the trial), ``model`` (hstu,
  sasrec, dlrm, ...), ``family`` ("GR" or "DLRM"), the trial's final ``status`` (see STATUSES) and
  ``failure_reason`` (null unless it failed or diverged), ``seed``; repeated on each of its rows;
- progress at this evaluation: ``step`` (optimizer steps), ``epoch`` (fractional when streaming),
  ``flops`` (cumulative training FLOPs), ``pf_days`` (= flops / FLOPS_PER_PF_DAY), the sizes
  ``params_embedding`` and ``params_non_embedding``, ``wall_seconds`` (cumulative) and ``eval_set``:
  the identifier (``label:digest``) of the events the row's ``valid/`` metrics scored. Rows with
  different identifiers were measured on different data and never share a frontier;
- data: ``data.task`` (see TASKS) and ``data.dataset``;
- a completed trial's totals, on its final row only: ``best_epoch``, ``passes``, ``train_wall_seconds``,
  ``train_cpu_seconds``, ``sparsity``, ``s2``, ``targets_trained_fraction``, ``train_flops_per_s`` and ``mfu``
  (see TOTAL_COLUMNS);
- one column per sweep axis, named by its dotted config key (``model.num_layers``); every trial gets
  its own config's value, swept or not;
- one column per metric, ``split/name[@k][/task]`` (``valid/hr@100``, ``valid/ne/click``,
  ``train/loss``), splits in SPLITS order. ``oracle/...`` are the data's true probabilities scored
  on the same set (synthetic data only: a floor no model can beat); ``progressive/...`` the next,
  not yet trained window (streaming; never fitted). Test metrics are filled only on a completed
  trial's final row (from its best-validation checkpoint); missing metrics are NaN.

A trial that failed before its first evaluation has one row, with its status and reason and no
progress.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

# --- a sweep's storage, under STORAGE/NAME
MANIFEST = "sweep.json"  # the sweep's name, axis keys and every trial (id, group, point)
TRIALS_DIR = "trials"  # one record per trial: trials/<trial_id>.json
RESULTS_FILE = "results.parquet"  # the results table

# --- columns
SWEEP = "sweep"
TRIAL_ID = "trial_id"
GROUP = "group"
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
# a completed trial's totals, on its final row only (NaN elsewhere), read by the paper-table views and never fitted
BEST_EPOCH = "best_epoch"  # epoch (or streaming window) of the best-validation checkpoint
PASSES = "passes"  # training passes (epochs, or windows when streaming)
TRAIN_WALL_SECONDS = "train_wall_seconds"  # seconds inside training passes (no evaluation), wall clock
TRAIN_CPU_SECONDS = "train_cpu_seconds"  # the same, process CPU time of all threads
SPARSITY = "sparsity"  # Table 3 sparsity of the attention over the sequences trained on
S2 = "s2"  # and their s2
TARGETS_TRAINED_FRACTION = "targets_trained_fraction"  # supervised tokens Stochastic Length kept (NaN with SL off)
TRAIN_FLOPS_PER_S = "train_flops_per_s"  # achieved training FLOP/s: training FLOPs / train_wall_seconds
MFU = "mfu"  # model FLOPs utilisation: train_flops_per_s / the device's peak at the trial's precision (0..1)

IDENTITY_COLUMNS = (SWEEP, TRIAL_ID, GROUP, MODEL, FAMILY, STATUS, FAILURE_REASON, SEED)
PROGRESS_COLUMNS = (STEP, EPOCH, FLOPS, PF_DAYS, PARAMS_EMBEDDING, PARAMS_NON_EMBEDDING, WALL_SECONDS, EVAL_SET)
DATA_COLUMNS = (TASK, DATASET)
TOTAL_COLUMNS = (BEST_EPOCH, PASSES, TRAIN_WALL_SECONDS, TRAIN_CPU_SECONDS, SPARSITY, S2, TARGETS_TRAINED_FRACTION,
                 TRAIN_FLOPS_PER_S, MFU)
# measured with a clock: the only columns that differ between two runs of one config and seed
TIMING_COLUMNS = (WALL_SECONDS, TRAIN_WALL_SECONDS, TRAIN_CPU_SECONDS, TRAIN_FLOPS_PER_S, MFU)
# every table starts with these, in this order; the axes, then the metrics, follow
FIXED_COLUMNS = IDENTITY_COLUMNS + PROGRESS_COLUMNS + DATA_COLUMNS + TOTAL_COLUMNS
# nullable integers; the other numbers are floats
INTEGER_COLUMNS = (SEED, STEP, PARAMS_EMBEDDING, PARAMS_NON_EMBEDDING)

TEXT, TEXT_OR_NULL, NUMBER = "text", "text or null", "number"
# the kind of values each fixed column holds (metric columns are numbers)
COLUMN_KINDS: Mapping[str, str] = MappingProxyType({
    SWEEP: TEXT, TRIAL_ID: TEXT, GROUP: TEXT, MODEL: TEXT, FAMILY: TEXT, STATUS: TEXT, FAILURE_REASON: TEXT_OR_NULL,
    SEED: NUMBER, STEP: NUMBER, EPOCH: NUMBER, FLOPS: NUMBER, PF_DAYS: NUMBER, PARAMS_EMBEDDING: NUMBER,
    PARAMS_NON_EMBEDDING: NUMBER, WALL_SECONDS: NUMBER, EVAL_SET: TEXT_OR_NULL, TASK: TEXT, DATASET: TEXT,
    **{total: NUMBER for total in TOTAL_COLUMNS},
})
FLOAT_COLUMNS = tuple(c for c in FIXED_COLUMNS if COLUMN_KINDS[c] == NUMBER and c not in INTEGER_COLUMNS)
# what a reader may rely on: every fixed column but ``group`` (the sweep's own bookkeeping of its trials) and
# the totals (tables written before they existed are still read; a view that needs them says so)
REQUIRED_COLUMNS = tuple(c for c in FIXED_COLUMNS if c != GROUP and c not in TOTAL_COLUMNS)
# columns whose value belongs to the trial, so every row of a trial holds the same one
PER_TRIAL_COLUMNS = (MODEL, FAMILY, STATUS, TASK, DATASET, SEED, EVAL_SET)
COMPUTE_COLUMNS = (PF_DAYS, FLOPS)  # the two units of training compute

# --- values
RUNNING, COMPLETED, FAILED, DIVERGED = "running", "completed", "failed", "diverged"
STATUSES = (COMPLETED, FAILED, DIVERGED, RUNNING)  # every status, in the order reports count them
FINISHED_STATUSES = (COMPLETED, FAILED, DIVERGED)  # the trial will not report again
FAILED_STATUSES = (FAILED, DIVERGED)  # stopped by an error: listed with their reason, never fitted
USABLE_STATUSES = (COMPLETED, RUNNING)  # trials whose evaluations are fitted
Task = Literal["retrieval", "gr_retrieval", "ranking"]  # values of data.task (the run config types the key with it)
TASKS: tuple[Task, ...] = get_args(Task)
Family = Literal["GR", "DLRM"]  # values of family (the model catalogue files every model under one)
GR_FAMILY, DLRM_FAMILY = get_args(Family)

FLOPS_PER_PF_DAY = 1e15 * 86400  # one PF-day: 1e15 FLOP/s (a petaFLOP/s) sustained for 86,400 s = 8.64e19 FLOPs


def pf_days(flops: float) -> float:
    """FLOPs expressed in PF-days, the table's ``pf_days`` (works on arrays too)."""
    return flops / FLOPS_PER_PF_DAY


# --- metric columns
SPLITS = ("train", "valid", "oracle", "progressive", "test")  # in the order their columns appear
HIGHER_IS_BETTER = frozenset({"hr", "ndcg", "mrr", "auc"})
LOWER_IS_BETTER = frozenset({"ne", "log_pplx", "loss"})
METRIC_FORMAT = (f"split/name[@k][/task] with split in {{{', '.join(SPLITS)}}} and name one of "
                 f"{', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}")
_METRIC_PATTERN = re.compile(rf"^({'|'.join(SPLITS)})/([a-z_]+)(?:@(\d+))?(?:/(.+))?$")


@dataclass(frozen=True)
class Metric:
    """A parsed metric column name such as ``valid/hr@100`` or ``valid/ne/click``."""

    column: str  # the whole name, ``valid/hr@100``
    split: str  # ``valid``
    base: str  # the metric without cut-off or task, ``hr``
    cutoff: int | None  # the k of ``hr@k``
    task: str | None  # the task of a per-task metric, ``click`` of ``ne/click``

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.base)


def is_metric_column(column: str) -> bool:
    """Whether ``column`` is a metric (``split/...``), known or not."""
    return "/" in column and column.split("/", 1)[0] in SPLITS


def parse_metric(column: str) -> Metric | None:
    """``split/name[@k][/task]`` parsed; None when the name breaks METRIC_FORMAT or its direction is unknown."""
    match = _METRIC_PATTERN.match(column)
    if match is None or match.group(2) not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        return None
    split, base, cutoff, task = match.groups()
    return Metric(column, split, base, int(cutoff) if cutoff else None, task)


def metric_base(name: str) -> str:
    """``valid/hr@10`` or ``hr@10`` -> ``hr``; ``ne/click`` -> ``ne``."""
    parts = name.split("/")
    if len(parts) > 1 and parts[0] in SPLITS:
        parts = parts[1:]
    return parts[0].split("@", 1)[0]


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better; ``name`` with or without its split (``valid/ne``, ``ne``).

    A metric of unknown direction (``positive_rate/click``, a statistic of the labels) counts as
    higher-is-better, so choosing a checkpoint or a trial's best value never fails on it; the
    analysis refuses to fit it (:func:`parse_metric` returns None).
    """
    return metric_base(name) not in LOWER_IS_BETTER


def sorted_metric_columns(columns: Iterable[str]) -> list[str]:
    """The metric columns among ``columns``, in table order: by split (SPLITS order), then by name."""
    metrics = {c for c in columns if is_metric_column(c)}
    return sorted(metrics, key=lambda c: (SPLITS.index(c.split("/", 1)[0]), c))


# --- axes
def is_axis_column(column: str) -> bool:
    """Whether ``column`` is a sweep axis: a dotted config key (``model.num_layers``) that is not a data column."""
    return "." in column and "/" not in column and column not in DATA_COLUMNS


def axis_columns(columns: Iterable[str]) -> list[str]:
    """The axis columns among ``columns``, in their order (whether they vary is the table's business)."""
    return [c for c in columns if is_axis_column(str(c))]
