"""``scaling results DIR``: a one-line-per-trial summary of a sweep's results table."""

from __future__ import annotations

import argparse
import sys

HELP = "summarise a sweep's results table (DIR/results.parquet): one line per trial"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="the sweep's folder STORAGE/NAME (or its results.parquet; local or URI)")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME",
                        help="validation/test metric to show, e.g. hr@10 (repeatable; default: ndcg@10 and hr@10, or ne)")


def run(args: argparse.Namespace) -> int:
    from scaling.sweep.summary import format_summary
    from scaling.sweep.table import read_current_results

    table, note = read_current_results(args.results)  # read-only, also while a sweep runs
    if note is not None:
        print(f"note: {note}", file=sys.stderr)
    print(format_summary(table, args.metric or None))
    return 0
