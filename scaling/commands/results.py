"""``scaling results DIR``: a one-line-per-trial summary of a sweep's results table."""

from __future__ import annotations

import argparse

HELP = "summarise a sweep's results table (DIR/results.parquet): one line per trial"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="the sweep's folder STORAGE/NAME (or its results.parquet; local or URI)")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME",
                        help="validation/test metric to show, e.g. hr@10 (repeatable; default: ndcg@10 and hr@10, or ne)")


def run(args: argparse.Namespace) -> int:
    from scaling.sweep.summary import format_summary
    from scaling.sweep.table import read_results

    print(format_summary(read_results(args.results), args.metric or None))
    return 0
