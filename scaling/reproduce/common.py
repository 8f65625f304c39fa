"""What every reproduction shares: validate all variants first, train each, write markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scaling.config import RunConfig, run_config_from_dict
from core.configtools import apply_overrides, to_dict

Row = dict[str, Any]


def variant_configs(base: dict[str, Any], variants: dict[str, list[str]], overrides: Sequence[str]) -> dict[str, RunConfig]:
    """One validated config per variant: ``base`` + the variant's overrides + the user's overrides.

    Everything is validated before anything trains, so a typo fails in a second, not an hour in.
    """
    return {
        name: run_config_from_dict(apply_overrides(base, [*changes, f"name={name}", *overrides]))
        for name, changes in variants.items()
    }


def train_or_reuse(config: RunConfig, out_dir: Path, progress: bool, reuse: bool) -> dict[str, Any]:
    """Train ``config`` into ``out_dir``; with ``reuse``, return the result already there if its config is identical.

    Only the config is compared: after a code change, delete the run's folder (or drop --reuse) to retrain it.
    """
    from scaling.train import train

    stored_path = out_dir / "result.json"
    if reuse and stored_path.is_file():
        stored = json.loads(stored_path.read_text())
        if stored.get("config") == json.loads(json.dumps(to_dict(config))):
            print(f"   reusing {stored_path} (identical config)", flush=True)
            return stored
        print(f"   {stored_path} has a different config: retraining", flush=True)
    return train(config, out_dir=out_dir, progress=progress)


def train_variants(
    configs: dict[str, RunConfig], out: Path, row: Callable[[str, dict[str, Any]], Row], progress: bool,
    reuse: bool = False,
) -> list[Row]:
    """Train every config with the one training path; one table row per variant."""
    rows = []
    for name, config in configs.items():
        print(f"== {name}", flush=True)
        rows.append(row(name, train_or_reuse(config, out / name, progress, reuse)))
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
    from core.files import write_text_atomic

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
    parser.add_argument("--reuse", action="store_true",
                        help="keep runs whose OUT/RUN/result.json has an identical config instead of retraining them")
