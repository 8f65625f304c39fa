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
from typing import Any

from scaling.reproduce.common import Row, add_common_arguments, markdown_table, train_variants, variant_configs, write_outputs

HELP = "Stochastic Length: metrics, sparsity and s2, time per pass for several alphas vs alpha=2.0 (markdown + CSV)"

# Base run settings per dataset: long histories relative to data.max_seq_len, small HSTU.
BASE_CONFIGS: dict[str, dict[str, Any]] = {
    "synthetic-industrial": {
        "seed": 42,
        "data": {
            # ~600 interleaved tokens per user on average (skewed), so most histories exceed N.
            "dataset": "synthetic-industrial", "task": "ranking", "max_seq_len": 256,
            "synthetic_industrial": {"num_users": 1000, "num_items": 5000, "num_categories": 50,
                                     "mean_events_per_user": 300.0, "max_events_per_user": 1024},
        },
        "model": {"name": "hstu", "num_layers": 2, "num_heads": 2, "embedding_dim": 32, "dropout": 0.1},
        "train": {"regime": "streaming", "epochs": 1, "num_windows": 4, "batch_size": 32, "lr": 2e-3},
    },
    "synthetic-dp": {
        "seed": 42,
        "data": {
            "dataset": "synthetic-dp", "task": "retrieval", "max_seq_len": 256,
            "synthetic_dp": {"num_items": 4000, "num_categories": 40, "num_records": 1000, "record_length": 512},
        },
        "model": {"name": "hstu", "num_layers": 2, "num_heads": 2, "embedding_dim": 32, "dropout": 0.1},
        "train": {"regime": "streaming", "epochs": 1, "num_windows": 4, "batch_size": 32, "lr": 2e-3,
                  "num_negatives": 128},
    },
}
HEADLINE_METRICS = {"ranking": ("ne", "auc"), "retrieval": ("ndcg@10", "hr@10", "log_pplx")}  # by data.task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthetic-industrial", choices=sorted(BASE_CONFIGS),
                        help="long-sequence stream to train on (its base config is in this module)")
    parser.add_argument("--alphas", nargs="+", type=float, default=[1.6, 1.8, 2.0],
                        help="SL alphas in (1, 2]; 2.0 is the baseline (SL off) and is always run")
    parser.add_argument("--selections", nargs="+", default=["greedy"], choices=["greedy", "random", "weighted"],
                        help="subsequence selection methods to compare (Appendix F.1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_common_arguments(parser, "runs/stochastic-length")


def variants(alphas: list[float], selections: list[str]) -> dict[str, list[str]]:
    """Run name -> config overrides; the baseline (alpha 2.0, SL off) first, then decreasing alpha."""
    runs = {"alpha2.0": ["train.stochastic_length.alpha=null"]}
    for alpha in sorted({a for a in alphas if a != 2.0}, reverse=True):
        for selection in selections:
            runs[f"alpha{alpha}-{selection}"] = [f"train.stochastic_length.alpha={alpha}",
                                                 f"train.stochastic_length.selection={selection}"]
    return runs


def result_row(name: str, result: dict[str, Any]) -> Row:
    from scaling.data.stochastic_length import subsequence_length

    settings = result["config"]["train"]["stochastic_length"]
    max_seq_len = result["config"]["data"]["max_seq_len"]
    alpha = settings["alpha"]
    row: Row = {
        "run": name,
        "alpha": 2.0 if alpha is None else alpha,
        "selection": "-" if alpha is None else settings["selection"],
        "subsequence_len": max_seq_len if alpha is None else subsequence_length(max_seq_len, alpha),
        "max_seq_len": max_seq_len,
        **{key: result["training_sparsity"][key] for key in ("sparsity", "s2")},
        "targets_trained": 1.0 if alpha is None else result["training_sparsity"].get("targets_trained_fraction"),
    }
    row.update({f"test/{metric}": value for metric, value in result["test"].items() if not metric.startswith("positive_rate/")})
    timing = result["timing"]
    row.update(steps=result["steps"], passes=timing["passes"], wall_s_per_pass=timing["wall_seconds_per_pass"],
               cpu_s_per_pass=timing["cpu_seconds_per_pass"], train_flops=result.get("flops"), device=result["device"])
    return row


def table(rows: list[Row], metrics: tuple[str, ...]) -> str:
    """One line per run; metric cells carry the relative change vs the first row (alpha = 2.0, SL off)."""
    header = (["alpha", "selection", "L", "sparsity", "s2", "targets trained"] + [f"test {m} (vs 2.0)" for m in metrics]
              + ["s/pass wall", "s/pass CPU", "time vs 2.0", "sum n^2 vs 2.0"])
    base, lines = rows[0], []
    for row in rows:
        cells = [f"{row['alpha']:.1f}" + (" (off)" if row is base else ""), row["selection"], str(row["subsequence_len"]),
                 f"{100 * row['sparsity']:.1f}%", f"{100 * row['s2']:.1f}%", _percent(row["targets_trained"])]
        for metric in metrics:
            value = row[f"test/{metric}"]
            cells.append(f"{value:.4f}" + ("" if row is base else _change(value, base[f"test/{metric}"])))
        cells += [f"{row['wall_s_per_pass']:.1f}", f"{row['cpu_s_per_pass']:.1f}",
                  f"{row['wall_s_per_pass'] / base['wall_s_per_pass']:.2f}x",
                  f"{(1 - row['s2']) / (1 - base['s2']):.2f}x"]
        lines.append(cells)
    return markdown_table(header, lines)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _change(value: float, reference: float) -> str:
    """' (+0.12%)': the paper reports SL's NE changes in hundredths of a percent."""
    if not reference or value != value or reference != reference:
        return ""
    return f" ({100 * (value / reference - 1):+.2f}%)"


NOTES = (
    "sparsity = 1 - mean(n)/N and s2 = 1 - mean(n^2)/N^2 over the training sequences actually trained on "
    "(Table 3; N = data.max_seq_len tokens); L = floor(N^(alpha/2)). Metric changes are relative to alpha = 2.0 "
    "(SL off); for NE and log_pplx lower is better. 'targets trained' is the share of supervised tokens SL kept "
    "(events holding targets are offered first, but a cut sequence holds at most L tokens). Timings are wall/CPU "
    "seconds per training pass on a shared machine: compare ratios from one invocation only. 'sum n^2 vs 2.0' = (1 - s2) / (1 - s2 at 2.0) is the "
    "attention work a jagged kernel does relative to the baseline; a padded backend (the CPU reference pads "
    "each batch to its longest sequence) saves far less, since one uncut sequence keeps a batch's padded length."
)


def run(args: argparse.Namespace) -> int:
    import torch

    from core.errors import UserError

    if any(not 1.0 < alpha <= 2.0 for alpha in args.alphas):
        raise UserError(f"--alphas: every alpha must be in (1, 2] (Eq. 4); got {args.alphas}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = variant_configs(BASE_CONFIGS[args.dataset], variants(args.alphas, args.selections), args.overrides)
    rows = train_variants(configs, args.out, result_row, progress=not args.quiet, reuse=args.reuse)
    task = next(iter(configs.values())).data.task
    metrics = HEADLINE_METRICS["ranking" if task == "ranking" else "retrieval"]
    write_outputs(args.out, "stochastic_length", table(rows, metrics), rows, NOTES)
    return 0
