"""Named views of a results table: the paper's tables rebuilt from a sweep's results alone.

Each view is one module with ``view(table, options) -> ViewOutput``: render blocks (the Markdown
table and its notes) and a frame (the CSV). It reads only the results table; the paper's
reference numbers live with the view that prints them. ``scaling analyze DIR --view NAME`` and
``scaling reproduce NAME`` write ``OUT/NAME.md`` and ``OUT/NAME.csv``. This module only names the
views and loads one on demand, so that listing them (``--help``) imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from analysis.views.common import ViewOptions, ViewOutput

# view name -> (module implementing it, one line saying what it shows)
VIEWS: dict[str, tuple[str, str]] = {
    "table2": ("analysis.views.table2",
               "Table 2: Transformer vs HSTU (-rab, Softmax) vs HSTU (-rab), HR@10 and HR@50 beside the paper's"),
    "table4": ("analysis.views.table4",
               "Table 4: each model's test metrics with gains over SASRec (DLRM for ranking), epochs and s/epoch"),
    "table5": ("analysis.views.table5",
               "Table 5: Transformer, ablated HSTUs, Transformer++, HSTU; retrieval log pplx and ranking NE beside "
               "the paper's, with both orderings"),
    "ranking": ("analysis.views.ranking", "every ranking model's NE and AUC per task, sizes, FLOPs and time, per dataset"),
    "stochastic_length": ("analysis.views.stochastic_length",
                          "Stochastic Length: metrics, sparsity and s2, time per pass for each alpha vs 2.0 (off)"),
}


def render_view(name: str, table: pd.DataFrame, options: ViewOptions) -> ViewOutput:
    """The view ``name`` of ``table`` (a validated results table)."""
    from analysis.errors import AnalysisError

    if name not in VIEWS:
        raise AnalysisError(f"unknown view '{name}'; views: {', '.join(VIEWS)}")
    return importlib.import_module(VIEWS[name][0]).view(table, options)


def write_view(name: str, table: pd.DataFrame, out: Path, options: ViewOptions, source: str) -> str:
    """Check ``table`` (read from ``source``), write OUT/NAME.md and OUT/NAME.csv atomically; return the Markdown."""
    from analysis import columns as col
    from analysis.load import require_usable_trials
    from analysis.render import to_markdown
    from core.files import write_text_atomic

    col.validate_results(table, source)
    require_usable_trials(table, source)
    output = render_view(name, table, options)
    markdown = to_markdown(output.blocks)
    write_text_atomic(out / f"{name}.md", markdown)
    write_text_atomic(out / f"{name}.csv", output.frame.to_csv(index=False))
    return markdown
