"""The ``stochastic_length`` view: model quality and training cost vs Stochastic Length's alpha (Figure 4, Table 16).

One row per (alpha, selection), the baseline first: alpha 2.0 means SL off (``train.stochastic_length.alpha``
null). Columns: L = floor(N^(alpha/2)), the Table 3 sparsity and s2 of the sequences trained on, the share
of supervised tokens kept, test metrics with their change over the baseline, and training seconds per pass
(``sweeps/stochastic_length.yaml``).
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.render import Paragraph, Table
from analysis.views.common import ViewOptions, ViewOutput, final_rows, fixed, relative_change, require_columns, seed_means
from core import results_schema as schema

ALPHA = "train.stochastic_length.alpha"
SELECTION = "train.stochastic_length.selection"
MAX_SEQ_LEN = "data.max_seq_len"
HEADLINE_METRICS = {"ranking": ("ne", "auc")}  # by data.task; retrieval tasks show the rest
RETRIEVAL_METRICS = ("ndcg@10", "hr@10", "log_pplx")
TOTALS = (schema.SPARSITY, schema.S2, schema.TARGETS_TRAINED_FRACTION, schema.PASSES, schema.TRAIN_WALL_SECONDS, schema.TRAIN_CPU_SECONDS)
NOTES = (
    "sparsity = 1 - mean(n)/N and s2 = 1 - mean(n^2)/N^2 over the training sequences actually trained on "
    "(Table 3; N = data.max_seq_len tokens); L = floor(N^(alpha/2)). Metric changes are relative to alpha = 2.0 "
    "(SL off); for NE and log_pplx lower is better. 'targets trained' is the share of supervised tokens SL kept "
    "(events holding targets are offered first, but a cut sequence holds at most L tokens). Timings are wall/CPU "
    "seconds per training pass on a shared machine: compare ratios from one run only. 'sum n^2 vs 2.0' = "
    "(1 - s2) / (1 - s2 at 2.0) is the attention work a jagged kernel does relative to the baseline; a padded "
    "backend (the CPU reference pads each batch to its longest sequence) saves far less, since one uncut sequence "
    "keeps a batch's padded length."
)


def subsequence_length(max_seq_len: float, alpha: float) -> float:
    """L = floor(N^(alpha/2)) tokens (Eq. 4), as scaling/data/stochastic_length.py cuts (exact powers kept)."""
    return float(math.floor(max_seq_len ** (alpha / 2.0) * (1.0 + 1e-12)))


def view(table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    require_columns(table, [ALPHA], "stochastic_length",
                    "sweep train.stochastic_length.alpha as an axis (sweeps/stochastic_length.yaml)")
    finals = final_rows(table)
    finals = finals.assign(**{
        ALPHA: pd.to_numeric(finals[ALPHA], errors="coerce").fillna(2.0),
        SELECTION: finals[SELECTION].where(finals[ALPHA].notna(), "-") if SELECTION in finals else "-",
        MAX_SEQ_LEN: pd.to_numeric(finals[MAX_SEQ_LEN], errors="coerce") if MAX_SEQ_LEN in finals else math.nan,
    })
    tasks = set(finals[schema.TASK])
    metrics = HEADLINE_METRICS["ranking"] if tasks == {"ranking"} else RETRIEVAL_METRICS
    stats = seed_means(finals, [ALPHA, SELECTION], [MAX_SEQ_LEN, *TOTALS, *(f"test/{m}" for m in metrics)])
    stats = stats.sort_values(ALPHA, ascending=False, kind="stable").reset_index(drop=True)
    stats["subsequence_len"] = [subsequence_length(n, a) if a < 2.0 else n
                                for n, a in zip(stats[MAX_SEQ_LEN], stats[ALPHA])]
    stats["wall_s_per_pass"] = stats[schema.TRAIN_WALL_SECONDS] / stats[schema.PASSES]
    stats["cpu_s_per_pass"] = stats[schema.TRAIN_CPU_SECONDS] / stats[schema.PASSES]
    return ViewOutput((_table(stats, metrics), Paragraph(NOTES)), stats)


def _table(stats: pd.DataFrame, metrics: tuple[str, ...]) -> Table:
    """One line per run; metric cells carry the change over the baseline (alpha 2.0), when there is one."""
    baselines = stats[stats[ALPHA] == 2.0]
    base = baselines.iloc[0] if not baselines.empty else None
    lines = []
    for _, row in stats.iterrows():
        is_base = row[ALPHA] == 2.0
        cells = [f"{row[ALPHA]:.1f}" + (" (off)" if is_base else ""), str(row[SELECTION]),
                 fixed(row["subsequence_len"], 0), _percent(row[schema.SPARSITY], 1), _percent(row[schema.S2], 1),
                 "100%" if is_base else _percent(row[schema.TARGETS_TRAINED_FRACTION], 0)]
        for metric in metrics:
            value = row[f"test/{metric}"]
            change = "" if base is None or is_base else relative_change(value, base[f"test/{metric}"], 2)
            cells.append(fixed(value, outcome=row["outcome"]) + change)
        cells += [fixed(row["wall_s_per_pass"], 1), fixed(row["cpu_s_per_pass"], 1),
                  _ratio(row["wall_s_per_pass"], None if base is None else base["wall_s_per_pass"]),
                  _ratio(1 - row[schema.S2], None if base is None else 1 - base[schema.S2])]
        lines.append(tuple(cells))
    header = ("alpha", "selection", "L", "sparsity", "s2", "targets trained", *(f"test {m} (vs 2.0)" for m in metrics),
              "s/pass wall", "s/pass CPU", "time vs 2.0", "sum n^2 vs 2.0")
    return Table(header, tuple(lines))


def _percent(value: float, digits: int) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def _ratio(value: float, reference: float | None) -> str:
    if reference is None or not (math.isfinite(value) and math.isfinite(reference)) or reference == 0:
        return "—"
    return f"{value / reference:.2f}x"
