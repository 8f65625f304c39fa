"""The ``table5`` view: HSTU, ablated HSTUs and Transformers in one-pass streaming (paper Table 5).

Rows are the sweep's groups (``sweeps/table5.yaml``), in the paper's order: ``transformer``,
``hstu_softmax_no_rab``, ``hstu_no_rab``, ``transformerpp``, ``hstu_rab_pos`` (the paper's "original
rab"; ours is the position-only bias) and ``hstu`` (rab on positions and time). Columns are the
retrieval log perplexity (a retrieval trial of the group) and the ranking NE of the main engagement
task (E-Task) and the main consumption task (C-Task) (a ranking trial of the group), each beside the
paper's value with both ranks, then how far our orderings agree with the paper's.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.errors import AnalysisError
from analysis.render import Bullets, Paragraph, Table
from analysis.views.common import (
    ViewOptions, ViewOutput, best_first, final_rows, fixed, ordering_sentence, ranks, require_columns, seed_means,
    seed_spread_sentence,
)
from core import results_schema as schema

NAN = math.nan
# group -> (the paper's row, retrieval log pplx, E-Task NE, C-Task NE): paper Table 5; the paper's standard
# Transformer diverged in ranking ("frequent loss explosions"), hence NaN
PAPER: dict[str, tuple[str, float, float, float]] = {
    "transformer": ("Transformers", 4.069, NAN, NAN),
    "hstu_softmax_no_rab": ("HSTU (-rab, Softmax)", 4.024, 0.5067, 0.7931),
    "hstu_no_rab": ("HSTU (-rab)", 4.021, 0.4980, 0.7860),
    "transformerpp": ("Transformer++", 4.015, 0.4945, 0.7822),
    "hstu_rab_pos": ("HSTU (original rab; ours: rab on positions only)", 4.029, 0.4941, 0.7817),
    "hstu": ("HSTU", 3.978, 0.4937, 0.7805),
}
# synthetic-industrial's events standing in for the paper's main engagement (E) and consumption (C) tasks
E_TASK, C_TASK = "click", "complete"
RETRIEVAL_TASKS = ("gr_retrieval", "retrieval")
# column label -> (results column, task kind, index of the paper's value); all three are lower-is-better
COLUMNS: dict[str, tuple[str, str, int]] = {
    "log pplx": ("test/log_pplx", "retrieval", 1),
    "E-Task NE": (f"test/ne/{E_TASK}", "ranking", 2),
    "C-Task NE": (f"test/ne/{C_TASK}", "ranking", 3),
}
OUR_TASKS = {"E-Task NE": E_TASK, "C-Task NE": C_TASK}  # what our column measures, shown in its header
NOTES = (
    "Ours: test = the last time window of the synthetic-industrial stream after one pass over the earlier ones "
    "(streaming), at the checkpoint best on the window before it; retrieval = next positive item among "
    "interleaved item/action tokens (log perplexity of the full-catalogue softmax), ranking = every task of "
    f"every item token (NE; E-Task = {E_TASK}, C-Task = {C_TASK}). (k) is the row's rank in its column, 1 = best "
    "(lowest). Values are means over completed seeds; a row with no completed trial shows its status (the paper's "
    "NaN is its Transformer's loss explosions in ranking). Paper: industrial data, 100B examples, l = 3, n = 2048, "
    "d = 512 (ranking) and l = 6, n = 512, d = 256 (retrieval); ours is a CPU-sized study, so compare orderings, "
    "not values."
)


def view(table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    require_columns(table, [schema.GROUP], "table5", "run sweeps/table5.yaml (scaling reproduce table5)")
    finals = final_rows(table)
    finals = finals.assign(_kind=finals[schema.TASK].map(lambda task: "retrieval" if task in RETRIEVAL_TASKS else task))
    stats = seed_means(finals, [schema.GROUP, "_kind"], [column for column, _, _ in COLUMNS.values()])
    groups = [group for group in PAPER if group in set(stats[schema.GROUP])]
    if not groups:
        raise AnalysisError(f"view 'table5' found none of the groups {', '.join(PAPER)}; run sweeps/table5.yaml")
    ours = {label: _values(stats, groups, column, kind) for label, (column, kind, _) in COLUMNS.items()}
    paper = {label: {group: PAPER[group][index] for group in groups} for label, (_, _, index) in COLUMNS.items()}
    header = ("Architecture", "group", *(name for label in COLUMNS for name in (
        f"ours {label}" + (f" ({OUR_TASKS[label]})" if label in OUR_TASKS else ""), f"paper {label}")))
    lines = []
    for group in groups:
        cells = []
        for label in COLUMNS:
            value, outcome = ours[label][group]
            cells += [_ranked(value, outcome, ranks(_finite(ours[label]), False).get(group)),
                      _ranked(paper[label][group], "NaN", ranks(paper[label], False).get(group))]
        lines.append((PAPER[group][0], group, *cells))
    labels = {group: group for group in groups}
    orderings = tuple(ordering_sentence(label, labels, best_first(_finite(ours[label]), False),
                                        best_first(paper[label], False)) for label in COLUMNS)
    orderings += (seed_spread_sentence(stats, {label: column for label, (column, _, _) in COLUMNS.items()}),)
    blocks = (Table(header, tuple(lines)), Paragraph(NOTES), Bullets(orderings))
    return ViewOutput(blocks, _frame(groups, ours, paper, stats))


def _values(stats: pd.DataFrame, groups: list[str], column: str, kind: str) -> dict[str, tuple[float, str]]:
    """group -> (mean value, outcome) of ``column`` over the group's trials of one task kind."""
    values = {}
    for group in groups:
        rows = stats[(stats[schema.GROUP] == group) & (stats["_kind"] == kind)]
        values[group] = (float(rows[column].iloc[0]), rows["outcome"].iloc[0]) if not rows.empty else (NAN, "not run")
    return values


def _finite(values: dict[str, tuple[float, str]]) -> dict[str, float]:
    return {group: value for group, (value, _) in values.items()}


def _ranked(value: float, outcome: str, rank: int | None) -> str:
    return fixed(value, 4, outcome) + (f" ({rank})" if rank is not None else "")


def _frame(groups: list[str], ours: dict, paper: dict, stats: pd.DataFrame) -> pd.DataFrame:
    """The CSV: one row per group, our value and the paper's for each column, and each trial kind's outcome."""
    rows = []
    for group in groups:
        row = {"group": group, "paper_row": PAPER[group][0]}
        for label, (column, _, _) in COLUMNS.items():
            name = column.removeprefix("test/")
            row[name], row[f"paper_{name}"] = ours[label][group][0], paper[label][group]
        for kind in ("retrieval", "ranking"):
            found = stats[(stats[schema.GROUP] == group) & (stats["_kind"] == kind)]
            row[f"{kind}_outcome"] = found["outcome"].iloc[0] if not found.empty else "not run"
        rows.append(row)
    return pd.DataFrame(rows)
