"""The ``table4`` view: test metrics of each model configuration, gains over the baseline, epochs and time.

Per (task, dataset): the report's Table 4 (:func:`analysis.tables.table4_block`: test metrics at each
trial's best-validation checkpoint, the change over SASRec's best configuration, or a DLRM's for
ranking), then how long each configuration trained: epochs run, the best epoch, and seconds per
epoch without evaluation. Where the dataset is one of the paper's (ML-1M, ML-20M, Books), the
paper's Table 4 rows follow for reference.
"""

from __future__ import annotations

import pandas as pd

from analysis import columns as col
from analysis.errors import AnalysisError
from analysis.render import Block, Paragraph, Table
from analysis.tables import Table4Data, table4_block, table4_data
from analysis.views.common import ViewOptions, ViewOutput, fixed
from core import results_schema as schema

TOTALS = (schema.BEST_EPOCH, schema.PASSES, schema.TRAIN_WALL_SECONDS, schema.TRAIN_CPU_SECONDS)
# the validation metric each task's trials select their checkpoint on (scaling/train.py's default)
SELECTION = {"ranking": "valid/ne"}
DEFAULT_SELECTION = "valid/ndcg@10"
PAPER_METRICS = ("HR@10", "HR@50", "HR@200", "NDCG@10", "NDCG@200")
# dataset -> the paper's Table 4 rows (multi-pass, full shuffle): method -> values of PAPER_METRICS
PAPER: dict[str, dict[str, tuple[float, ...]]] = {
    "ml-1m": {"SASRec (2023)": (0.2853, 0.5474, 0.7528, 0.1603, 0.2498),
              "HSTU": (0.3097, 0.5754, 0.7716, 0.1720, 0.2606),
              "HSTU-large": (0.3294, 0.5935, 0.7839, 0.1893, 0.2771)},
    "ml-20m": {"SASRec (2023)": (0.2906, 0.5499, 0.7655, 0.1621, 0.2521),
               "HSTU": (0.3252, 0.5885, 0.7943, 0.1878, 0.2774),
               "HSTU-large": (0.3567, 0.6149, 0.8076, 0.2106, 0.2971)},
    "amazon-books": {"SASRec (2023)": (0.0292, 0.0729, 0.1400, 0.0156, 0.0350),
                     "HSTU": (0.0404, 0.0943, 0.1710, 0.0219, 0.0450),
                     "HSTU-large": (0.0469, 0.1066, 0.1876, 0.0257, 0.0508)},
}


def view(table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    blocks: list[Block] = []
    frames = []
    for task, dataset in table[[schema.TASK, schema.DATASET]].drop_duplicates().itertuples(index=False):
        selection = SELECTION.get(task, DEFAULT_SELECTION)
        metric = col.parse_metric(selection) if selection in table.columns else None
        data = table4_data(table, task, dataset, options.baseline, metric, options.compute, TOTALS)
        if data is None:
            continue
        blocks += [table4_block(data, task, dataset, options.unit), _training_table(data, dataset)]
        if dataset in PAPER:
            blocks.append(_paper_table(dataset))
        frames.append(_frame(data, task, dataset))
    if not frames:
        raise AnalysisError("view 'table4': no completed trial has test or validation metrics yet")
    blocks.append(Paragraph("Epochs: passes trained (early stopping ends a run after `train.patience` validations "
                            "without a better selection metric) and, in parentheses, the one whose checkpoint the "
                            "test metrics come from. Seconds per epoch exclude evaluation; wall and process CPU "
                            "time, on whatever else the machine was running."))
    return ViewOutput(tuple(blocks), pd.concat(frames, ignore_index=True))


def _training_table(data: Table4Data, dataset: str) -> Table:
    lines = []
    for _, config in data.configs.iterrows():
        passes = config.get(schema.PASSES, float("nan"))
        lines.append((config["label"], f"{fixed(passes, 0)} ({fixed(config.get(schema.BEST_EPOCH, float('nan')), 0)})",
                      fixed(config.get(schema.TRAIN_WALL_SECONDS, float("nan")) / passes, 2),
                      fixed(config.get(schema.TRAIN_CPU_SECONDS, float("nan")) / passes, 2)))
    return Table(("Model (configuration)", "epochs (best)", "s/epoch wall", "s/epoch CPU"), tuple(lines),
                 f"{dataset}: training, mean over seeds.")


def _paper_table(dataset: str) -> Table:
    rows = tuple((method, *(f"{value:.4f}" for value in values)) for method, values in PAPER[dataset].items())
    return Table(("Paper's method", *PAPER_METRICS), rows,
                 f"{dataset}: the paper's Table 4 (multi-pass, full shuffle), for reference.")


def _frame(data: Table4Data, task: str, dataset: str) -> pd.DataFrame:
    """The CSV rows of one dataset: configuration, trials, compute, metric means, training totals, baseline flag."""
    frame = data.configs.drop(columns=["_selection"]).assign(**{schema.DATASET: dataset, schema.TASK: task})
    frame["baseline"] = [index == data.baseline for index in frame.index]
    if schema.PASSES in frame:
        for total, name in ((schema.TRAIN_WALL_SECONDS, "wall_s_per_epoch"), (schema.TRAIN_CPU_SECONDS, "cpu_s_per_epoch")):
            frame[name] = frame[total] / frame[schema.PASSES]
    leading = [schema.DATASET, schema.TASK, "label", schema.MODEL]
    return frame[leading + [c for c in frame.columns if c not in leading]]
