"""``scaling reproduce stochastic-length``: model quality vs Stochastic Length's alpha (Figure 4, Table 16).

Trains HSTU once per (alpha, selection) with the one training path on a long-sequence stream,
alpha = 2.0 meaning SL off (the baseline), and writes a markdown table (and CSV) of test metrics
with their change relative to the baseline, the Table 3 sparsity and s2 of the sequences trained
on, and training seconds per pass. Everything else (data, model, seed, steps) is identical across
runs, so differences come from SL alone. The base configs are sized for a few CPU minutes; pass
``--set`` overrides (applied to every run) to scale them up.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

HELP = "Stochastic Length: metrics, sparsity and s2, time per pass for several alphas vs alpha=2.0 (markdown + CSV)"

# Base run settings per dataset: long histories relative to data.max_seq_len, small HSTU.
BASE_CONFIGS: dict[str, dict[str, Any]] = {
    "synthetic-industrial": {
        "data": {
            "dataset": "synthetic-industrial", "task": "ranking", "max_seq_len": 512,
            "synthetic_industrial": {"num_users": 1500, "num_items": 5000, "num_categories": 50,
                                     "mean_events_per_user": 400.0, "max_events_per_user": 1024},
        },
        "model": {"name": "hstu", "num_layers": 2, "num_heads": 2, "embedding_dim": 64, "dropout": 0.1},
        "train": {"regime": "streaming", "epochs": 1, "num_windows": 4, "batch_size": 32, "lr": 1e-3},
    },
    "synthetic-dp": {
        "data": {
            "dataset": "synthetic-dp", "task": "retrieval", "max_seq_len": 512,
            "synthetic_dp": {"num_items": 4000, "num_categories": 40, "num_records": 1500, "record_length": 768},
        },
        "model": {"name": "hstu", "num_layers": 2, "num_heads": 2, "embedding_dim": 64, "dropout": 0.1},
        "train": {"regime": "streaming", "epochs": 1, "num_windows": 4, "batch_size": 32, "lr": 1e-3,
                  "num_negatives": 128},
    },
}
HEADLINE_METRICS = {"ranking": ("ne", "auc"), "retrieval": ("ndcg@10", "hr@10", "log_pplx")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthetic-industrial", choices=sorted(BASE_CONFIGS),
                        help="long-sequence stream to train on (its base config is in this module)")
    parser.add_argument("--alphas", nargs="+", type=float, default=[1.6, 1.8, 2.0],
                        help="SL alphas in (1, 2]; 2.0 is the baseline (SL off) and is always run")
    parser.add_argument("--selections", nargs="+", default=["greedy"], choices=["greedy", "random", "weighted"],
                        help="subsequence selection methods to compare (Appendix F.1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every run, e.g. --set data.max_seq_len=1024 (repeatable)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every run (data, init, shuffling, SL)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("runs/stochastic-length"), help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_settings(alphas: list[float], selections: list[str]) -> list[tuple[float | None, str]]:
    """(alpha or None for the baseline, selection) per run, baseline first; selection is moot without SL."""
    settings: list[tuple[float | None, str]] = [(None, "-")]
    for alpha in sorted({a for a in alphas if a != 2.0}, reverse=True):
        settings.extend((alpha, selection) for selection in selections)
    return settings


def result_row(alpha: float | None, selection: str, result: dict[str, Any], metrics: tuple[str, ...]) -> dict[str, Any]:
    from scaling.data.stochastic_length import subsequence_length

    max_seq_len = result["config"]["data"]["max_seq_len"]
    row: dict[str, Any] = {
        "alpha": 2.0 if alpha is None else alpha,
        "selection": selection,
        "subsequence_len": max_seq_len if alpha is None else subsequence_length(max_seq_len, alpha),
        "max_seq_len": max_seq_len,
        **{key: result["training_sparsity"][key] for key in ("sparsity", "s2")},
    }
    for metric in metrics:
        row[f"test/{metric}"] = result["test"].get(metric, float("nan"))
    for name, value in result["test"].items():
        if name.startswith("ne/"):
            row[f"test/{name}"] = value
    timing = result["timing"]
    row.update(steps=result["steps"], passes=timing["passes"], wall_s_per_pass=timing["wall_seconds_per_pass"],
               cpu_s_per_pass=timing["cpu_seconds_per_pass"], device=result["device"])
    return row


def markdown_table(rows: list[dict[str, Any]], metrics: tuple[str, ...]) -> str:
    """One line per run; metric cells carry the relative change vs the first row (alpha = 2.0)."""
    header = (["alpha", "selection", "L", "sparsity", "s2"] + [f"test {m} (vs 2.0)" for m in metrics]
              + ["s/pass wall", "s/pass CPU", "x time vs 2.0"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = rows[0]
    for row in rows:
        cells = [f"{row['alpha']:.1f}" + (" (off)" if row is base else ""), row["selection"], str(row["subsequence_len"]),
                 f"{100 * row['sparsity']:.1f}%", f"{100 * row['s2']:.1f}%"]
        for metric in metrics:
            value, reference = row[f"test/{metric}"], base[f"test/{metric}"]
            change = "" if row is base or not reference else f" ({100 * (value / reference - 1):+.2f}%)"
            cells.append(f"{value:.4f}{change}")
        cells += [f"{row['wall_s_per_pass']:.1f}", f"{row['cpu_s_per_pass']:.1f}",
                  f"{row['wall_s_per_pass'] / base['wall_s_per_pass']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from scaling.config import run_config_from_dict
    from scaling.configtools import apply_overrides
    from scaling.errors import UserError
    from scaling.results import write_text_atomic
    from scaling.train import train

    if any(not 1.0 < alpha <= 2.0 for alpha in args.alphas):
        raise UserError(f"--alphas: every alpha must be in (1, 2] (Eq. 4); got {args.alphas}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = apply_overrides({**BASE_CONFIGS[args.dataset], "seed": args.seed}, args.overrides)
    configs = []
    for alpha, selection in run_settings(args.alphas, args.selections):
        section = {"alpha": alpha} if alpha is None else {"alpha": alpha, "selection": selection}
        name = "alpha2.0" if alpha is None else f"alpha{alpha}-{selection}"
        data = apply_overrides(base, [f"name=sl-{name}"])
        data.setdefault("train", {})["stochastic_length"] = section
        configs.append((alpha, selection, name, run_config_from_dict(data)))  # validate all before training
    metrics = HEADLINE_METRICS["ranking" if configs[0][3].data.task == "ranking" else "retrieval"]
    rows = []
    for alpha, selection, name, config in configs:
        print(f"== {name}", flush=True)
        result = train(config, out_dir=args.out / name, progress=not args.quiet)
        rows.append(result_row(alpha, selection, result, metrics))
    table = markdown_table(rows, metrics)
    write_text_atomic(args.out / "stochastic_length.md", table + "\n")
    with (args.out / "stochastic_length.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    print(f"wrote {args.out / 'stochastic_length.md'} and {args.out / 'stochastic_length.csv'}")
    return 0
