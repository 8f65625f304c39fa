"""What every reproduction shares: validate all variants first, train each, write markdown and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scaling.config import RunConfig, run_config_from_dict
from scaling.configtools import apply_overrides

Row = dict[str, Any]


def variant_configs(base: dict[str, Any], variants: dict[str, list[str]], overrides: Sequence[str]) -> dict[str, RunConfig]:
    """One validated config per variant: ``base`` + the variant's overrides + the user's overrides.

    Everything is validated before anything trains, so a typo fails in a second, not an hour in.
    """
    return {
        name: run_config_from_dict(apply_overrides(base, [*changes, f"name={name}", *overrides]))
        for name, changes in variants.items()
    }


def train_variants(
    configs: dict[str, RunConfig], out: Path, row: Callable[[str, dict[str, Any]], Row], progress: bool
) -> list[Row]:
    """Train every config with the one training path; one table row per variant."""
    from scaling.train import train

    rows = []
    for name, config in configs.items():
        print(f"== {name}", flush=True)
        rows.append(row(name, train(config, out_dir=out / name, progress=progress)))
    return rows


def markdown_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    rendered = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rendered += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(rendered)


def relative_gain(value: float, reference: float) -> str:
    """' (+8.6%)' style gain of ``value`` over ``reference`` (empty when undefined)."""
    if not reference or value != value or reference != reference:
        return ""
    return f" ({100 * (value / reference - 1):+.1f}%)"


def write_outputs(out: Path, name: str, table: str, rows: list[Row], notes: str = "") -> None:
    """OUT/NAME.md (table + notes) and OUT/NAME.csv, each written atomically."""
    from scaling.results import write_text_atomic

    write_text_atomic(out / f"{name}.md", table + "\n" + (f"\n{notes}\n" if notes else ""))
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / f"{name}.csv", buffer.getvalue())
    print(table)
    if notes:
        print(notes)
    print(f"wrote {out / f'{name}.md'} and {out / f'{name}.csv'}")


def add_common_arguments(parser, default_out: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every run, e.g. --set train.num_windows=5 (repeatable)")
    parser.add_argument("--out", type=Path, default=Path(default_out), help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
