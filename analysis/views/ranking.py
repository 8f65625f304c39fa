"""The ``ranking`` view: every ranking model on the same targets, loss and metrics, one table per dataset.

Rows are models (GRs read the interleaved item/action tokens, DLRMs hand-crafted features of each
impression), in the sweep's order; columns are the test NE (mean over tasks, then per task), AUC per
task, sizes, training FLOPs, steps and training seconds (``sweeps/ranking.yaml``).
"""

from __future__ import annotations

import pandas as pd

from analysis.errors import AnalysisError
from analysis.formatting import number
from analysis.render import Block, Heading, Paragraph, Table
from analysis.views.common import ViewOptions, ViewOutput, count, final_rows, fixed, seed_means
from core import results_schema as schema

TOTALS = (schema.PARAMS_EMBEDDING, schema.PARAMS_NON_EMBEDDING, schema.FLOPS, schema.STEP, schema.TRAIN_WALL_SECONDS)
NOTES = ("Streaming: one pass over the earlier time windows in order, every evaluation on the window before the last "
         "(held out), test = the last window at the checkpoint best on it; NE = mean log loss / entropy of the test "
         "base rate (lower is better, 1.0 = predicting the base rate). Values are means over completed seeds; a model "
         "with no completed trial shows its status.")


def view(table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    ranking = final_rows(table[table[schema.TASK] == "ranking"])
    if ranking.empty:
        raise AnalysisError("view 'ranking': the results hold no ranking trial (data.task: ranking)")
    blocks: list[Block] = []
    frames = []
    for dataset, rows in ranking.groupby(schema.DATASET, sort=False):
        tasks = _tasks(rows)
        metrics = ["test/ne", *(f"test/ne/{t}" for t in tasks), *(f"test/auc/{t}" for t in tasks)]
        stats = seed_means(rows, [schema.MODEL, schema.FAMILY], [*metrics, *TOTALS])
        blocks += [Heading(str(dataset), 3), _table(stats, tasks)]
        frames.append(stats.assign(**{schema.DATASET: dataset}))
    blocks.append(Paragraph(NOTES))
    frame = pd.concat(frames, ignore_index=True)
    frame.columns = [c.removeprefix("test/") for c in frame.columns]
    return ViewOutput(tuple(blocks), frame[[schema.DATASET, *(c for c in frame.columns if c != schema.DATASET)]])


def _tasks(rows: pd.DataFrame) -> list[str]:
    """The dataset's tasks: those with a test NE in its rows, in column order."""
    return [c.removeprefix("test/ne/") for c in rows.columns
            if c.startswith("test/ne/") and rows[c].notna().any()]


def _table(stats: pd.DataFrame, tasks: list[str]) -> Table:
    header = ("model", "family", "NE (mean)", *(f"NE {t}" for t in tasks), *(f"AUC {t}" for t in tasks),
              "emb params", "non-emb params", "train FLOPs", "steps", "train s")
    lines = []
    for _, row in stats.iterrows():
        outcome = row["outcome"]
        metrics = [fixed(row[c], outcome=outcome) for c in
                   ["test/ne", *(f"test/ne/{t}" for t in tasks), *(f"test/auc/{t}" for t in tasks)]]
        lines.append((row[schema.MODEL], row[schema.FAMILY], *metrics, count(row[schema.PARAMS_EMBEDDING]),
                      count(row[schema.PARAMS_NON_EMBEDDING]), number(row[schema.FLOPS]), count(row[schema.STEP]),
                      fixed(row[schema.TRAIN_WALL_SECONDS], 0)))
    return Table(header, tuple(lines))
