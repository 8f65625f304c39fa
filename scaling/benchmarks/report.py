"""Plain-text and markdown tables and CSV files for benchmark rows (lists of flat dicts); no GPU or torch needed."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def format_cell(value: object) -> str:
    """A table cell: floats with 3 significant decimals, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Right-aligned text table with a header line and a rule; one line per row."""
    cells = [[format_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[index]) for line in cells)]) for index, column in enumerate(columns)]
    header = "  ".join(column.rjust(width) for column, width in zip(columns, widths))
    rule = "  ".join("-" * width for width in widths)
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    return "\n".join([header, rule, *lines])


def format_markdown(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """The same rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, object]], columns: Sequence[str], path: Path) -> None:
    """Write ``rows`` to ``path`` with ``columns`` as the header (missing values left empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: "" if row.get(column) is None else row.get(column) for column in columns})
