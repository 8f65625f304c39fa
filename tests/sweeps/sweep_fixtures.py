"""What the sweep tests share: the tiny trials' run config, and how to compare and inspect their results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core.results_schema import TIMING_COLUMNS


def tiny_trial_config(folder: Path, model_name: str | None = "hstu") -> dict[str, Any]:
    """One layer, d=8, two epochs on 80 synthetic Dirichlet-process records, cached under ``folder``;
    ``model_name=None`` leaves the model to the sweep's groups."""
    model: dict[str, Any] = {"num_layers": 1, "embedding_dim": 8, "dropout": 0.0}
    if model_name is not None:
        model = {"name": model_name, **model}
    return {
        "data": {"dataset": "synthetic-dp", "max_seq_len": 12, "cache_dir": str(folder / "cache"),
                 "synthetic_dp": {"num_items": 100, "num_categories": 5, "num_records": 80, "record_length": 16}},
        "model": model,
        "train": {"epochs": 2, "batch_size": 32, "num_negatives": 8, "patience": 0, "device": "cpu"},
        "eval": {"batch_size": 128},
    }


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without what legitimately differs between runs (timings), in a fixed order."""
    return table.drop(columns=list(TIMING_COLUMNS)).sort_values(["trial_id", "step"]).reset_index(drop=True)


def recorded_evaluations(sweep_folder: Path) -> int:
    """The evaluations the (one) trial record of the sweep holds so far (0 while it is being written)."""
    for path in (sweep_folder / "trials").glob("*.json"):
        try:
            return len(json.loads(path.read_text())["evaluations"])
        except (json.JSONDecodeError, KeyError):
            return 0
    return 0
