"""The results table: one row per (trial, evaluation), built from the manifest and the trial records.

Its columns, their order and kinds are the contract :mod:`core.results_schema` spells out (what
``analysis/`` reads): the fixed identity, progress and data columns, one column per axis (its
dotted key; every trial gets its own config's value, swept or not) and one ``split/metric`` column
per metric. Test metrics and the totals appear only on a completed trial's final row; a trial that failed before
its first evaluation gets one row with its status and reason. Building is a pure function of its
inputs: rebuilding from the same files gives the same table.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from core import results_schema as schema
from core.errors import UserError
from scaling.sweep.records import Manifest, SweepStore, storage_uri


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a plain config mapping (None when absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def trial_rows(sweep: str, record: dict[str, Any], axes: list[str]) -> list[dict[str, Any]]:
    """The rows of one trial record: one per evaluation, test metrics on the last row if it completed."""
    config = record["config"]
    identity = {
        schema.SWEEP: sweep,
        schema.TRIAL_ID: record["trial_id"],
        schema.GROUP: record["group"],
        schema.MODEL: record["model"],
        schema.FAMILY: record["family"],
        schema.STATUS: record["status"],
        schema.FAILURE_REASON: record.get("failure_reason"),
        schema.SEED: record["seed"],
        **{key: config_value(config, key) for key in schema.DATA_COLUMNS},
        **{key: config_value(config, key) for key in axes if key not in schema.DATA_COLUMNS},
    }
    evaluations = record.get("evaluations") or []
    final = record.get("final") or {}
    if not evaluations:  # failed (or was interrupted) before its first evaluation
        return [{**identity, schema.WALL_SECONDS: final.get(schema.WALL_SECONDS), **_params(final)}]
    rows = [{**identity, **measures(evaluation)} for evaluation in evaluations]
    if record["status"] == schema.COMPLETED:
        rows[-1].update({key: value for key, value in final.items() if key.startswith("test/") or key in schema.TOTAL_COLUMNS})
    return rows


def _params(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report.get(key) for key in (schema.PARAMS_EMBEDDING, schema.PARAMS_NON_EMBEDDING)}


def measures(report: dict[str, Any], keys: tuple[str, ...] = schema.PROGRESS_COLUMNS) -> dict[str, Any]:
    """The entries of a trial's report that are results-table columns: ``keys`` and every metric."""
    return {key: value for key, value in report.items() if key in keys or schema.is_metric_column(key)}


def results_table(manifest: Manifest, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The tidy table over the manifest's trials that have a record, in sweep order."""
    rows = []
    for entry in manifest.trials:
        record = records.get(entry["trial_id"])
        if record is not None:
            rows.extend(trial_rows(manifest.name, record, manifest.axes))
    axes = [key for key in manifest.axes if key not in schema.DATA_COLUMNS]
    table = pd.DataFrame(rows)
    metrics = schema.sorted_metric_columns(table.columns)
    table = table.reindex(columns=[*schema.FIXED_COLUMNS, *axes, *metrics])
    for column in schema.INTEGER_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    for column in [*schema.FLOAT_COLUMNS, *metrics]:
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
    store.write_bytes(schema.RESULTS_FILE, buffer.getvalue())
    return f"{store.root}/{schema.RESULTS_FILE}"


def rebuild_results(store: SweepStore) -> pd.DataFrame | None:
    """Rebuild and write the results table from what is on disk; None when the sweep has no manifest."""
    manifest_data = store.read_json(schema.MANIFEST)
    if manifest_data is None:
        return None
    table = results_table(Manifest.from_json(manifest_data), store.read_records())
    write_results(store, table)
    return table


def read_results(location: str) -> pd.DataFrame:
    """The results table at ``location``: a sweep folder (STORAGE/NAME) or its results.parquet, local or URI."""
    uri = storage_uri(location)
    if not uri.endswith(".parquet"):
        uri = f"{uri}/{schema.RESULTS_FILE}"
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        with filesystem.open_input_file(path) as stream:
            table = pd.read_parquet(stream)
    except FileNotFoundError:
        raise UserError(f"no results table at {uri}; pass a sweep's folder (STORAGE/NAME) or its results.parquet") from None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {uri}: {str(error).strip().splitlines()[0]}") from None
    missing = [column for column in schema.REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise UserError(f"{uri} is not a sweep's results table: it lacks the columns {', '.join(missing[:4])}"
                        f"{' ...' if len(missing) > 4 else ''}; pass the folder a sweep wrote")
    return table


def read_current_results(location: str) -> tuple[pd.DataFrame, str | None]:
    """The results table at ``location``, read-only; with a note when it is behind the trial records.

    A sweep that is running, or was killed, has records newer than its table (or no table yet):
    the table is then built in memory from the manifest and the records (nothing is written; the
    sweep driver is their only writer) and the note says how to rewrite results.parquet.
    """
    uri = storage_uri(location)
    if uri.endswith(".parquet") or "/" not in uri:
        return read_results(location), None
    storage, name = uri.rsplit("/", 1)
    store = SweepStore(storage, name)
    manifest = store.read_json(schema.MANIFEST)
    if manifest is None:
        return read_results(location), None
    written = _modified(store, schema.RESULTS_FILE)
    record_files = store.record_files()
    newest_record = max((info.mtime_ns or 0 for info in record_files), default=0)
    if written is not None and written >= newest_record:
        return read_results(location), None
    table = results_table(Manifest.from_json(manifest), store.read_records(record_files))
    state = "is older than the trial records" if written is not None else "does not exist yet"
    return table, (f"{uri}/{schema.RESULTS_FILE} {state} (a sweep is running or was killed): shown as rebuilt from the "
                   f"records; `scaling sweep SWEEP.yaml --resume` rewrites it")


def _modified(store: SweepStore, relative: str) -> int | None:
    info = store.filesystem.get_file_info(f"{store.path}/{relative}")
    return info.mtime_ns if info.type == pafs.FileType.File else None

