"""``scaling reproduce table4``: SASRec vs HSTU (vs HSTU-large) at identical Table 4 settings.

Trains each (dataset, model) from ``sweeps/runs/table4-DATASET-MODEL.yaml`` with the one
training path, then writes a markdown table (and CSV) of validation and test HR@10, NDCG@10,
HR@50, NDCG@50 and MRR, the test gain of every model over the first one (SASRec), the number
of epochs and the training seconds per epoch (wall clock and process CPU time).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scaling.reproduce.common import add_common_arguments, markdown_table, relative_gain, train_or_reuse, write_outputs

HELP = "Table 4: SASRec vs HSTU at identical settings on MovieLens / Amazon data (markdown + CSV)"

METRICS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "amazon-beauty"], help="datasets to run")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu"], help="sasrec, hstu and/or hstu-large")
    parser.add_argument("--configs", type=Path, default=Path("sweeps/runs"), help="folder with table4-DATASET-MODEL.yaml")
    add_common_arguments(parser, "runs/table4")


def result_row(dataset: str, model: str, result: dict[str, Any]) -> dict[str, Any]:
    timing = result["timing"]
    row: dict[str, Any] = {"dataset": dataset, "model": model}
    for split in ("valid", "test"):
        for metric in METRICS:
            row[f"{split}/{metric}"] = result[split][metric]
    row["epochs"] = timing["passes"]
    row["best_epoch"] = result.get("best_epoch")
    row["wall_s_per_epoch"] = timing["wall_seconds_per_pass"]
    row["cpu_s_per_epoch"] = timing["cpu_seconds_per_pass"]
    row["params_non_embedding"] = result["params"]["non_embedding"]
    row["device"] = result["device"]
    return row


def table4_markdown(rows: list[dict[str, Any]]) -> str:
    """One line per (dataset, model); test cells carry the gain over the dataset's first model."""
    header = (["dataset", "model"] + [f"valid {m}" for m in METRICS] + [f"test {m}" for m in METRICS]
              + ["epochs (best)", "s/epoch wall", "s/epoch CPU"])
    lines = []
    baseline: dict[str, dict[str, Any]] = {}
    for row in rows:
        base = baseline.setdefault(row["dataset"], row)
        cells = [row["dataset"], row["model"]] + [f"{row[f'valid/{m}']:.4f}" for m in METRICS]
        for metric in METRICS:
            value = row[f"test/{metric}"]
            cells.append(f"{value:.4f}" + ("" if base is row else relative_gain(value, base[f"test/{metric}"])))
        cells += [f"{row['epochs']} ({row['best_epoch']})", f"{row['wall_s_per_epoch']:.2f}", f"{row['cpu_s_per_epoch']:.2f}"]
        lines.append(cells)
    return markdown_table(header, lines)


def run(args: argparse.Namespace) -> int:
    from scaling.config import load_run_config
    from core.errors import UserError
    configs = {}
    for dataset in args.datasets:
        for model in args.models:
            path = args.configs / f"table4-{dataset}-{model}.yaml"
            if not path.is_file():
                raise UserError(f"{path}: no Table 4 config for dataset {dataset!r} and model {model!r}")
            configs[(dataset, model)] = load_run_config(path, args.overrides)  # validate all before training
    rows = []
    for (dataset, model), config in configs.items():
        print(f"== {dataset} / {model}", flush=True)
        result = train_or_reuse(config, args.out / f"{dataset}-{model}", not args.quiet, args.reuse)
        rows.append(result_row(dataset, model, result))
    notes = ("Leave-one-out (last item = test, second-to-last = validation), full-catalogue ranking with the user's "
             "history excluded; test metrics from the best-validation checkpoint (NDCG@10); time per epoch excludes evaluation.")
    write_outputs(args.out, "table4", table4_markdown(rows), rows, notes)
    return 0
