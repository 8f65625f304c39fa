"""The ``table2`` view: pointwise vs softmax attention on Dirichlet-process data (paper Table 2, Appendix C).

Rows are the sweep's groups (``sweeps/table2.yaml``): ``transformer``, ``hstu_softmax_no_rab`` and
``hstu_no_rab``; each shows its test HR@10 and HR@50 (with the change over the first row), NDCG@10
and log perplexity, beside the paper's HR@10 and HR@50, then the orderings of ours and the paper's.
"""

from __future__ import annotations

import pandas as pd

from analysis.render import Bullets, Paragraph, Table
from analysis.views.common import (
    ViewOptions, ViewOutput, best_first, count, final_rows, fixed, ordering_sentence, relative_change,
    require_columns, seed_means,
)
from core import results_schema as schema

# group -> (the paper's row, HR@10, HR@50): paper Table 2, one-pass streaming over 1,000,000 records
PAPER: dict[str, tuple[str, float, float]] = {
    "transformer": ("Transformer", 0.0442, 0.2025),
    "hstu_softmax_no_rab": ("HSTU (-rab, Softmax)", 0.0617, 0.2496),
    "hstu_no_rab": ("HSTU (-rab)", 0.0893, 0.3170),
}
METRICS = ("hr@10", "hr@50", "ndcg@10", "log_pplx")
TOTALS = (schema.PARAMS_NON_EMBEDDING, schema.TRAIN_WALL_SECONDS, schema.STEP)
NOTES = ("Test = the last time window, scored at the checkpoint best on the window before it (never trained on); "
         "every position of every test record is ranked against the full catalogue. HR changes in parentheses are "
         "relative to the first row; values are means over the completed seeds of each row; 'train s' is training "
         "time without evaluation.")


def view(table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    require_columns(table, [schema.GROUP], "table2", "run sweeps/table2.yaml (scaling reproduce table2)")
    stats = seed_means(final_rows(table), [schema.GROUP], [*(f"test/{m}" for m in METRICS), *TOTALS])
    stats = _paper_order(stats)
    reference = stats.iloc[0]
    lines = []
    for _, row in stats.iterrows():
        paper = PAPER.get(row[schema.GROUP])
        paper_cells = (f"{paper[1]:.4f}", f"{paper[2]:.4f}") if paper else ("—", "—")
        hr = [fixed(row[f"test/{m}"], outcome=row["outcome"])
              + relative_change(row[f"test/{m}"], reference[f"test/{m}"]) for m in ("hr@10", "hr@50")]
        lines.append((row[schema.GROUP], *hr, fixed(row["test/ndcg@10"], outcome=row["outcome"]),
                      fixed(row["test/log_pplx"], 3, row["outcome"]),
                      *paper_cells,
                      count(row[schema.PARAMS_NON_EMBEDDING]), fixed(row[schema.TRAIN_WALL_SECONDS], 0),
                      str(row["completed"])))
    header = ("model", "HR@10", "HR@50", "NDCG@10", "log pplx", "paper HR@10", "paper HR@50", "non-emb params",
              "train s", "seeds")
    return ViewOutput((Table(header, tuple(lines)), Paragraph(NOTES), Bullets(_orderings(stats))), _frame(stats))


def _paper_order(stats: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows first, in its order, then any other group of the sweep."""
    order = {group: index for index, group in enumerate(PAPER)}
    return stats.sort_values(schema.GROUP, key=lambda groups: groups.map(lambda g: order.get(g, len(order))),
                             kind="stable").reset_index(drop=True)


def _orderings(stats: pd.DataFrame) -> tuple[str, ...]:
    labels = {group: group for group in stats[schema.GROUP]} | {group: group for group in PAPER}
    lines = []
    for metric, index in (("HR@10", 1), ("HR@50", 2)):
        ours = best_first(dict(zip(stats[schema.GROUP], stats[f"test/{metric.lower()}"])), higher_is_better=True)
        paper = best_first({group: values[index] for group, values in PAPER.items()}, higher_is_better=True)
        lines.append(ordering_sentence(metric, labels, ours, paper))
    return tuple(lines)


def _frame(stats: pd.DataFrame) -> pd.DataFrame:
    """The CSV: one row per group, the metrics and the paper's values."""
    return pd.DataFrame({
        "variant": stats[schema.GROUP],
        **{metric: stats[f"test/{metric}"] for metric in METRICS},
        "paper_hr@10": stats[schema.GROUP].map(lambda g: PAPER[g][1] if g in PAPER else float("nan")),
        "paper_hr@50": stats[schema.GROUP].map(lambda g: PAPER[g][2] if g in PAPER else float("nan")),
        "params_non_embedding": stats[schema.PARAMS_NON_EMBEDDING].round().astype("Int64"),
        "train_wall_seconds": stats[schema.TRAIN_WALL_SECONDS],
        "steps": stats[schema.STEP].round().astype("Int64"),
        "seeds": stats["completed"],
        "outcome": stats["outcome"],
    })
