"""``scaling reproduce ranking``: every ranking model on the same targets, loss and metrics.

GR models (HSTU, SASRec, Transformer++) read the interleaved item/action token stream; DLRMs
(DLRM, DCN-v2, DHEN, MMoE, DIN) read causal hand-crafted features of each impression. All train
one pass over time windows (streaming) and are tested on the last window, with NE and AUC per
task. two_tower is a retrieval model and is not part of this table.
"""

from __future__ import annotations

import argparse
from typing import Any

from scaling.reproduce.common import Row, add_common_arguments, markdown_table, train_variants, variant_configs, write_outputs

HELP = "ranking table: NE and AUC per task of every ranking model on ml-100k and the synthetic industrial stream"

GR_MODELS = ("hstu", "sasrec", "transformerpp")
DLRM_MODELS = ("dlrm", "dcnv2", "dhen", "mmoe", "din")

DATASETS: dict[str, dict[str, Any]] = {
    "ml-100k": {"dataset": "ml-100k", "path": "../shared/datasets/ml-100k"},
    "synthetic-industrial": {
        "dataset": "synthetic-industrial",
        "synthetic_industrial": {"num_users": 4000, "num_items": 5000, "num_categories": 50, "mean_events_per_user": 120},
    },
}
# Each family gets its usual batch unit: sequences for GRs, impressions for DLRMs.
FAMILY_SETTINGS = {
    "GR": ["model.embedding_dim=64", "model.num_layers=2", "model.num_heads=2", "train.batch_size=32"],
    "DLRM": ["model.embedding_dim=32", "model.dlrm.hidden_dim=256", "model.dlrm.mlp_layers=2", "model.num_layers=2",
             "model.dlrm.history_len=50", "train.batch_size=512"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS), help="datasets to run")
    parser.add_argument("--models", nargs="+", default=[*GR_MODELS, *DLRM_MODELS], help="models to run")
    parser.add_argument("--ml100k-path", default=DATASETS["ml-100k"]["path"], help="folder holding ml-100k's u.data")
    add_common_arguments(parser, "runs/ranking")


def base_config(dataset: dict[str, Any]) -> dict[str, Any]:
    return {
        "seed": 42,
        "data": {**dataset, "task": "ranking", "max_seq_len": 200},
        "model": {"dropout": 0.0},
        "train": {"regime": "streaming", "epochs": 1, "num_windows": 10, "lr": 1.0e-3},
        "eval": {"batch_size": 256},
    }


def _row(name: str, result: dict[str, Any]) -> Row:
    dataset, model = name.split("/")
    row: Row = {"dataset": dataset, "model": model, "family": result["model_family"], "ne": result["test"]["ne"]}
    for task in result["dataset"]["tasks"]:
        row[f"ne/{task}"] = result["test"][f"ne/{task}"]
        row[f"auc/{task}"] = result["test"][f"auc/{task}"]
    row["params_embedding"] = result["params"]["embedding"]
    row["params_non_embedding"] = result["params"]["non_embedding"]
    row["train_flops"] = result.get("flops")
    row["steps"] = result["steps"]
    row["train_wall_seconds"] = result["timing"]["train_wall_seconds"]
    return row


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) >= 1e4 else f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def dataset_table(rows: list[Row]) -> str:
    """One dataset's rows as markdown: NE and AUC for each of its tasks, sizes, FLOPs and time."""
    tasks = [key.split("/", 1)[1] for key in dict.fromkeys(k for row in rows for k in row if k.startswith("ne/"))]
    header = ["model", "family", "NE (mean)", *(f"NE {t}" for t in tasks), *(f"AUC {t}" for t in tasks),
              "emb params", "non-emb params", "train FLOPs", "steps", "train s"]
    lines = [
        [row["model"], row["family"], _format(row["ne"]),
         *(_format(row.get(f"ne/{t}")) for t in tasks), *(_format(row.get(f"auc/{t}")) for t in tasks),
         _format(row["params_embedding"]), _format(row["params_non_embedding"]), _format(row["train_flops"]),
         _format(row["steps"]), f"{row['train_wall_seconds']:.0f}"]
        for row in rows
    ]
    return markdown_table(header, lines)


def run(args: argparse.Namespace) -> int:
    datasets = {name: dict(DATASETS[name]) for name in args.datasets}
    if "ml-100k" in datasets:
        datasets["ml-100k"]["path"] = args.ml100k_path
    configs = {}
    for dataset_name, dataset in datasets.items():
        base = base_config(dataset)
        variants = {
            f"{dataset_name}/{model}": [f"model.name={model}", *FAMILY_SETTINGS["GR" if model in GR_MODELS else "DLRM"]]
            for model in args.models
        }
        configs |= variant_configs(base, variants, args.overrides)
    rows = train_variants(configs, args.out, _row, progress=not args.quiet, reuse=args.reuse)
    tables = [f"### {dataset}\n\n" + dataset_table([row for row in rows if row["dataset"] == dataset])
              for dataset in dict.fromkeys(row["dataset"] for row in rows)]
    windows = next(iter(configs.values())).train.num_windows
    notes = (f"Streaming: one pass over the first {windows - 2} of {windows} time windows in order, every evaluation "
             f"on window {windows - 1} (held out), test = the last window at the checkpoint best on it; NE = mean log loss / "
             "entropy of the test base rate (lower is better, 1.0 = predicting the base rate).")
    write_outputs(args.out, "ranking", "\n\n".join(tables), rows, notes)
    return 0
