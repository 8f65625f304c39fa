"""The results table: one row per (trial, evaluation), built from the manifest and the trial records.

Columns (the contract ``analysis/`` reads): ``sweep``, ``trial_id``, ``group``, ``model``,
``family``, ``status``, ``failure_reason``, ``seed``, ``step``, ``epoch``, ``flops``,
``pf_days``, ``params_embedding``, ``params_non_embedding``, ``wall_seconds``, ``eval_set`` (the
identifier of the events the row's ``valid/`` metrics were scored on), ``data.task``,
``data.dataset``, a completed trial's totals (``FINAL_COLUMNS``), one column per axis (its dotted key; every trial gets its own config's value,
swept or not), and one column per metric, ``split/metric`` (split: train, valid, oracle,
progressive, test). Test metrics and the totals appear only on a
completed trial's final row; a trial that failed before its first evaluation gets one row
with its status and reason. Building is a pure function of its inputs: rebuilding from the
same files gives the same table.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from core.errors import UserError
from scaling.metrics import higher_is_better
from scaling.sweep.records import MANIFEST, RESULTS_FILE, Manifest, SweepStore, storage_uri

IDENTITY_COLUMNS = ["sweep", "trial_id", "group", "model", "family", "status", "failure_reason", "seed"]
PROGRESS_COLUMNS = ["step", "epoch", "flops", "pf_days", "params_embedding", "params_non_embedding", "wall_seconds",
                    "eval_set"]
DATA_COLUMNS = ["data.task", "data.dataset"]
# A completed trial's totals, on its final row only (like test metrics): the best checkpoint's epoch or window,
# training passes and seconds (without evaluation), and the Table 3 sparsity and s2 of the sequences trained on
# with the share of supervised tokens Stochastic Length kept (NaN with SL off).
FINAL_COLUMNS = ["best_epoch", "passes", "train_wall_seconds", "train_cpu_seconds", "sparsity", "s2",
                 "targets_trained_fraction"]
INTEGER_COLUMNS = ["seed", "step", "params_embedding", "params_non_embedding"]  # epoch is fractional when streaming
SPLIT_ORDER = {"train": 0, "valid": 1, "oracle": 2, "progressive": 3, "test": 4}


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a plain config mapping (None when absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def is_metric(column: str) -> bool:
    return column.split("/", 1)[0] in SPLIT_ORDER and "/" in column


def trial_rows(sweep: str, record: dict[str, Any], axes: list[str]) -> list[dict[str, Any]]:
    """The rows of one trial record: one per evaluation, test metrics on the last row if it completed."""
    config = record["config"]
    identity = {
        "sweep": sweep,
        "trial_id": record["trial_id"],
        "group": record["group"],
        "model": record["model"],
        "family": record["family"],
        "status": record["status"],
        "failure_reason": record.get("failure_reason"),
        "seed": record["seed"],
        "data.task": config_value(config, "data.task"),
        "data.dataset": config_value(config, "data.dataset"),
        **{key: config_value(config, key) for key in axes if key not in DATA_COLUMNS},
    }
    evaluations = record.get("evaluations") or []
    final = record.get("final") or {}
    if not evaluations:  # failed (or was interrupted) before its first evaluation
        return [{**identity, "wall_seconds": final.get("wall_seconds"), **_params(final)}]
    rows = [{**identity, **_measures(evaluation)} for evaluation in evaluations]
    if record["status"] == "completed":
        rows[-1].update({key: value for key, value in final.items() if key.startswith("test/") or key in FINAL_COLUMNS})
    return rows


def _params(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report.get(key) for key in ("params_embedding", "params_non_embedding")}


def _measures(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key in PROGRESS_COLUMNS or is_metric(key)}


def results_table(manifest: Manifest, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The tidy table over the manifest's trials that have a record, in sweep order."""
    rows = []
    for entry in manifest.trials:
        record = records.get(entry["trial_id"])
        if record is not None:
            rows.extend(trial_rows(manifest.name, record, manifest.axes))
    axes = [key for key in manifest.axes if key not in DATA_COLUMNS]
    table = pd.DataFrame(rows)
    metrics = sorted({c for c in table.columns if is_metric(c)}, key=lambda c: (SPLIT_ORDER[c.split("/")[0]], c))
    columns = IDENTITY_COLUMNS + PROGRESS_COLUMNS + DATA_COLUMNS + FINAL_COLUMNS + axes + metrics
    table = table.reindex(columns=columns)
    for column in INTEGER_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    for column in ["epoch", "flops", "pf_days", "wall_seconds", *FINAL_COLUMNS, *metrics]:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    for column in axes:
        table[column] = _storable(table[column])
    return table


def _storable(column: pd.Series) -> pd.Series:
    """An axis column Parquet can store: mixed kinds (text and numbers, mappings) become JSON text."""
    kinds = {type(v) for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))}
    if kinds <= {int, float} or len(kinds) <= 1 and not kinds & {dict, list}:
        return column
    return column.map(lambda v: None if v is None else json.dumps(v, sort_keys=True))


def write_results(store: SweepStore, table: pd.DataFrame) -> str:
    """Write ``results.parquet`` atomically; returns its location."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    store.write_bytes(RESULTS_FILE, buffer.getvalue())
    return f"{store.root}/{RESULTS_FILE}"


def rebuild_results(store: SweepStore) -> pd.DataFrame | None:
    """Rebuild and write the results table from what is on disk; None when the sweep has no manifest."""
    manifest_data = store.read_json(MANIFEST)
    if manifest_data is None:
        return None
    table = results_table(Manifest.from_json(manifest_data), store.read_records())
    write_results(store, table)
    return table


def metric_direction(column: str) -> int:
    """+1 when larger is better for metric ``column`` (``valid/hr@10``), -1 when smaller is (``valid/ne``)."""
    name = column.split("/", 1)[1]
    return 1 if higher_is_better(name) else -1


def read_results(location: str) -> pd.DataFrame:
    """The results table at ``location``: a sweep folder (STORAGE/NAME) or its results.parquet, local or URI."""
    uri = storage_uri(location)
    if not uri.endswith(".parquet"):
        uri = f"{uri}/{RESULTS_FILE}"
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        with filesystem.open_input_file(path) as stream:
            return pd.read_parquet(stream)
    except FileNotFoundError:
        raise UserError(f"no results table at {uri}; pass a sweep's folder (STORAGE/NAME) or its results.parquet") from None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {uri}: {str(error).strip().splitlines()[0]}") from None
