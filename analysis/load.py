"""Read a sweep's results table from disk and check it against the contract before anything is fitted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import columns as col
from analysis.errors import AnalysisError
from core import results_schema as schema


def results_file(results: Path) -> Path:
    """The parquet file a results path names: ``DIR/results.parquet``, or the file itself."""
    if not results.exists():
        raise AnalysisError(f"results folder {results} does not exist; pass the folder a sweep wrote")
    if results.is_file():
        if results.suffix != ".parquet":
            raise AnalysisError(f"{results} is not a folder or a .parquet file; pass the sweep's results folder")
        return results
    path = results / schema.RESULTS_FILE
    if not path.is_file() and (results / schema.MANIFEST).is_file():
        raise AnalysisError(
            f"{results} holds a sweep's trial records but no {schema.RESULTS_FILE} yet (the sweep is starting or was "
            f"killed before writing it); `scaling sweep SWEEP.yaml --resume` rebuilds it, `scaling results {results}` "
            "shows the trials meanwhile"
        )
    if not path.is_file():
        raise AnalysisError(
            f"{results} has no {schema.RESULTS_FILE}; is it a sweep's results folder? "
            f"(a sweep writes RESULTS_DIR/{schema.RESULTS_FILE})"
        )
    return path


def load_results(results: Path) -> pd.DataFrame:
    """The validated results table at ``results`` (a folder holding results.parquet, or that file)."""
    path = results_file(results)
    try:
        table = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several unrelated types for a corrupt file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AnalysisError(f"cannot read {path}: {first_line}") from error
    col.validate_results(table, str(path))
    require_usable_trials(table, str(path))
    return table


def require_usable_trials(table: pd.DataFrame, source: str) -> None:
    """Raise when no trial completed or is still running: there would be nothing to fit."""
    usable = table[schema.STATUS].isin(schema.USABLE_STATUSES)
    if usable.any():
        return
    trials = table.drop_duplicates(schema.TRIAL_ID)
    reasons = [f"{row[schema.TRIAL_ID]}: {row[schema.STATUS]} ({_reason(row[schema.FAILURE_REASON])})"
               for _, row in trials.head(3).iterrows()]
    more = f"; ... {len(trials) - 3} more" if len(trials) > 3 else ""
    raise AnalysisError(
        f"every trial in {source} failed or diverged ({len(trials)} trials), nothing to fit; "
        f"{'; '.join(reasons)}{more}"
    )


def _reason(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    return text.splitlines()[0] if text.strip() else "no reason recorded"
