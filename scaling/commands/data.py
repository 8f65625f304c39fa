"""``scaling data stats``: load (or fetch) a run config's dataset and print its size and shape.

Without a config file the run config's built-in defaults are used, with the synthetic generators
sized by ``--size``: ``small`` (the default, a few seconds and tens of MB of cache) or ``paper``
(the run config's own defaults: synthetic-dp is Appendix C's 1M-record stream, minutes and GBs).
The run-config defaults themselves never change here: sweeps and trial ids rely on them.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    from scaling.config import DataConfig
    from scaling.data.sequences import SequenceDataset

HELP = "load a run config's dataset and print users, items, interactions and history-length percentiles"

_PERCENTILES = (25, 50, 75, 90, 99)

# --size -> run-config overrides applied before --set when no config file is given
SIZES: dict[str, tuple[str, ...]] = {
    # synthetic-dp as sweeps/table2.yaml streams it (20,000 records of 128 items); synthetic-industrial
    # with a tenth of its users: each a few seconds on two cores
    "small": ("data.synthetic_dp.num_records=20000", "data.synthetic_industrial.num_users=10000"),
    "paper": (),  # the run config's defaults: 1,000,000 synthetic-dp records (1-2.5 min, 6 GB of memory, a 2 GB cache)
}


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
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default=None,
        help="without a config file: size of the synthetic generators, small (default: synthetic-dp with 20,000 "
        "records, synthetic-industrial with 10,000 users; seconds) or paper (the run config's defaults: 1,000,000 "
        "synthetic-dp records: 1 to 2.5 minutes, 6 GB of memory, a 2 GB cache)",
    )


def run(args: argparse.Namespace) -> int:
    from scaling.config import load_run_config
    from scaling.data.loading import load_dataset

    if args.config is not None and args.size is not None:
        raise UserError(f"--size sizes the built-in defaults; with a config file ({args.config}) use --set instead")
    preset = () if args.config is not None else SIZES[args.size or "small"]
    config = load_run_config(args.config, [*preset, *args.overrides])
    print(f"loading {describe_source(config.data)} (generated or read, then cached, on first use) ...", flush=True)
    started = time.perf_counter()
    dataset = load_dataset(config.data)
    print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
    print(format_stats(dataset, config.data.max_seq_len))
    return 0


def describe_source(data: DataConfig) -> str:
    """What is about to be loaded, in a few words (the generator's size for synthetic data)."""
    if data.dataset == "synthetic-dp":
        dp = data.synthetic_dp
        return f"synthetic-dp: {dp.num_records:,} records of {dp.record_length} items over {dp.num_items:,} items"
    if data.dataset == "synthetic-industrial":
        industrial = data.synthetic_industrial
        return (f"synthetic-industrial: {industrial.num_users:,} users, about {industrial.mean_events_per_user:g} "
                f"events each, over {industrial.num_items:,} items")
    return data.dataset + (f" from {data.path}" if data.path else "")


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
    if dataset.labels is not None and dataset.task_names:
        rates = dataset.labels.mean(axis=0)
        rows.append(("tasks (positive rate)", ", ".join(f"{t} {r:.1%}" for t, r in zip(dataset.task_names, rates))))
        rows.append(("action tokens", f"{len(np.unique(dataset.action_tokens)):,} seen of {dataset.num_action_tokens:,}"))
    if "raw_interactions" in counts:
        raw = f"{counts['raw_users']:,} users, {counts['raw_items']:,} items"
        rows.append(("before filters", f"{raw}, {counts['raw_interactions']:,} interactions"))
        rows.append(("duplicate events", f"{counts.get('duplicate_events', 0):,} dropped (same user, item and timestamp "
                                         "as an earlier event)"))
    for name, digest in fingerprint.get("sources", {}).items():
        rows.append((f"source {name}", f"sha256 {digest}"))
    rows.append(("cache key", str(fingerprint.get("cache_key", "?"))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
