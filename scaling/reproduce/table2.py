"""``scaling reproduce table2``: pointwise vs softmax attention on the Appendix C synthetic stream.

Paper Table 2 (one-pass streaming over Dirichlet-process data, no timestamps so no rab):
Transformer HR@10 .0442 < HSTU (-rab, softmax) .0617 < HSTU (-rab) .0893. All three share the
sizes below; the stream is trained once in time order (records are users, in stream order),
and the last time window (the last 10% of records) is the test set, as in Appendix C.
"""

from __future__ import annotations

import argparse
from typing import Any

from scaling.reproduce.common import (
    Row, add_common_arguments, markdown_table, relative_gain, train_variants, variant_configs, write_outputs,
)

HELP = "Table 2: Transformer vs HSTU (-rab, softmax) vs HSTU (-rab) on Dirichlet-process data, one pass"

PAPER_HR10 = {"transformer": 0.0442, "hstu_softmax_no_rab": 0.0617, "hstu_no_rab": 0.0893}
PAPER_HR50 = {"transformer": 0.2025, "hstu_softmax_no_rab": 0.2496, "hstu_no_rab": 0.3170}

# Appendix C at a size a CPU can stream once in minutes: the paper uses 1,000,000 records.
BASE: dict[str, Any] = {
    "seed": 42,
    "data": {
        "dataset": "synthetic-dp",
        "task": "retrieval",
        "max_seq_len": 128,
        "synthetic_dp": {"num_items": 20_000, "num_categories": 100, "num_records": 20_000, "record_length": 128},
    },
    "model": {"num_layers": 2, "num_heads": 2, "embedding_dim": 64, "dropout": 0.0},
    "train": {"regime": "streaming", "epochs": 1, "num_windows": 10, "batch_size": 64, "lr": 1.0e-3,
              "num_negatives": 128, "temperature": 0.05},
    "eval": {"batch_size": 128},
}
VARIANTS = {
    "transformer": ["model.name=sasrec", "model.transformer.ffn_dim=256"],
    "hstu_softmax_no_rab": ["model.name=hstu", "model.hstu.attention=softmax", "model.hstu.rab=none"],
    "hstu_no_rab": ["model.name=hstu", "model.hstu.attention=pointwise", "model.hstu.rab=none"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "runs/table2")


def _row(name: str, result: dict[str, Any]) -> Row:
    return {
        "variant": name,
        "hr@10": result["test"]["hr@10"],
        "hr@50": result["test"]["hr@50"],
        "ndcg@10": result["test"]["ndcg@10"],
        "log_pplx": result["test"]["log_pplx"],
        "paper_hr@10": PAPER_HR10[name],
        "paper_hr@50": PAPER_HR50[name],
        "params_non_embedding": result["params"]["non_embedding"],
        "train_wall_seconds": result["timing"]["train_wall_seconds"],
        "steps": result["steps"],
    }


def run(args: argparse.Namespace) -> int:
    configs = variant_configs(BASE, VARIANTS, args.overrides)
    rows = train_variants(configs, args.out, _row, progress=not args.quiet, reuse=args.reuse)
    reference = rows[0]
    lines = [
        [row["variant"], f"{row['hr@10']:.4f}{relative_gain(row['hr@10'], reference['hr@10'])}",
         f"{row['hr@50']:.4f}{relative_gain(row['hr@50'], reference['hr@50'])}", f"{row['ndcg@10']:.4f}",
         f"{row['log_pplx']:.3f}", f"{row['paper_hr@10']:.4f}", f"{row['paper_hr@50']:.4f}",
         f"{row['params_non_embedding']:,}", f"{row['train_wall_seconds']:.0f}"]
        for row in rows
    ]
    header = ["model", "HR@10", "HR@50", "NDCG@10", "log pplx", "paper HR@10", "paper HR@50", "non-emb params", "train s"]
    data = configs["transformer"].data
    notes = (f"Data: synthetic-dp, {data.synthetic_dp.num_records:,} records x {data.synthetic_dp.record_length}, "
             f"{data.synthetic_dp.num_items:,} items; one pass over {configs['transformer'].train.num_windows} time windows, "
             "test = last window, every position of every test record scored against the full catalogue.")
    write_outputs(args.out, "table2", markdown_table(header, lines), rows, notes)
    return 0
