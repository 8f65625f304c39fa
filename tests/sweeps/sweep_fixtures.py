"""The run config of the sweep tests' tiny trials, shared so that every Ray test trains the same seconds-long HSTU."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
