"""``scaling data stats``: load (or fetch) a run config's dataset and print its size and shape."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaling.data.sequences import SequenceDataset

HELP = "load a run config's dataset and print users, items, interactions and history-length percentiles"

_PERCENTILES = (25, 50, 75, 90, 99)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["stats"], help="stats: print dataset statistics")
    parser.add_argument("config", nargs="?", default=None, help="run config YAML (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.dataset=ml-100k (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from scaling.config import load_run_config
    from scaling.data.loading import load_dataset

    config = load_run_config(args.config, args.overrides)
    dataset = load_dataset(config.data)
    print(format_stats(dataset, config.data.max_seq_len))
    return 0


def format_stats(dataset: SequenceDataset, max_seq_len: int) -> str:
    """Aligned ``name  value`` lines describing ``dataset``."""
    import numpy as np

    lengths = dataset.lengths()
    fingerprint = dataset.fingerprint
    percentiles = np.percentile(lengths, _PERCENTILES)
    spread = " | ".join(f"p{p} {value:,.0f}" for p, value in zip(_PERCENTILES, percentiles))
    longer = int((lengths > max_seq_len).sum())
    counts = fingerprint.get("counts", {})
    rows = [
        ("dataset", str(fingerprint.get("dataset", "?"))),
        ("users", f"{dataset.num_users:,}"),
        ("items", f"{dataset.num_items:,}"),
        ("interactions", f"{dataset.num_interactions:,}"),
        ("history length", f"min {lengths.min():,} | {spread} | max {lengths.max():,} | mean {lengths.mean():,.1f}"),
        (
            f"longer than {max_seq_len}",
            f"{longer:,} users ({longer / dataset.num_users:.1%}); only their most recent {max_seq_len} are fed",
        ),
        ("timestamp ties", f"{counts.get('timestamp_tie_fraction', 0.0):.1%} of consecutive pairs within a user"),
        ("ratings", "yes" if dataset.ratings is not None else "no"),
    ]
    if "raw_interactions" in counts:
        raw = f"{counts['raw_users']:,} users, {counts['raw_items']:,} items"
        rows.append(("before filters", f"{raw}, {counts['raw_interactions']:,} interactions"))
    for name, digest in fingerprint.get("sources", {}).items():
        rows.append((f"source {name}", f"sha256 {digest}"))
    rows.append(("cache key", str(fingerprint.get("cache_key", "?"))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
