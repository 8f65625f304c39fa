"""``scaling analyze RESULTS_DIR [--view NAME]``: scaling-law fits, frontiers, saturation verdicts, figures and a
report; or, with ``--view``, one paper table of the results (:mod:`analysis.views`).

A thin adapter: the analysis itself lives in :mod:`analysis`, which reads only the results table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from analysis.views import VIEWS
from core.errors import UserError
from core.results_schema import COMPUTE_COLUMNS, PF_DAYS

HELP = "analyse a sweep's results.parquet: scaling-law fits per family, saturation, figures, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                        help="folder holding the sweep's results.parquet (or that file)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: RESULTS_DIR/report); with --view, the folder for NAME.md and "
                             "NAME.csv (default: RESULTS_DIR)")
    parser.add_argument("--view", default=None, metavar="NAME",
                        help="instead of the report, print one paper table and write OUT/NAME.md and OUT/NAME.csv: "
                             + "; ".join(f"{name}: {description}" for name, (_, description) in VIEWS.items()))
    parser.add_argument("--metric", action="append", default=[], metavar="METRIC",
                        help="metric to analyse, e.g. hr@100 or valid/ne (repeatable; default: every HR cut-off, "
                             "NDCG@10 and NE present)")
    parser.add_argument("--threshold", action="append", default=[], metavar="[METRIC=]GAIN",
                        help="gain per decade of compute that separates improving from saturated: the AICc-selected "
                             "fit's gain at the end of the explored compute, over its whole bootstrap interval, must "
                             "be above it (improving) or below it (saturated), else undetermined; for every metric "
                             "or one (repeatable; default: 0.005 for HR/NDCG, 0.001 for NE)")
    parser.add_argument("--compute", choices=COMPUTE_COLUMNS, default=PF_DAYS,
                        help=f"compute column to fit against (default: {PF_DAYS})")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="trial resamples for the intervals; 0 disables them, and then every verdict is "
                             "undetermined (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--per-model", choices=("primary", "all", "none"), default="primary",
                        help="also fit each model of a family with several models alone: for the headline metric, "
                             "for every metric, or not at all")
    parser.add_argument("--baseline", default=None, metavar="MODEL",
                        help="model whose best configuration is Table 4's baseline (report and table4 view) "
                             "(default: sasrec; dlrm for ranking)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="worker processes for the fits (default: the CPUs available, at most 8)")
    parser.add_argument("--huber-delta", type=float, default=1e-3, metavar="DELTA",
                        help="Huber transition on ln-residuals for the power-law fits (default: 1e-3)")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """``["0.002", "hr@100=0.01"]`` -> ``{"*": 0.002, "valid/hr@100": 0.01}``."""
    from analysis.columns import normalize_metric_name

    thresholds: dict[str, float] = {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            gain = float(number)
        except ValueError:
            raise UserError(f"--threshold '{value}': expected GAIN or METRIC=GAIN, e.g. 0.001 or ne=0.001") from None
        thresholds[normalize_metric_name(name) if name else "*"] = gain
    return thresholds


def run(args: argparse.Namespace) -> int:
    if args.view is not None:
        return run_view(args)
    from analysis.report import analyze, summary_line
    from analysis.study import Options

    jobs = args.jobs if args.jobs is not None else min(len(os.sched_getaffinity(0)), 8)
    options = Options(metrics=tuple(args.metric), thresholds=parse_thresholds(args.threshold), compute=args.compute,
                      bootstrap=args.bootstrap, seed=args.seed, per_model=args.per_model, huber_delta=args.huber_delta,
                      jobs=jobs)
    target = analyze(args.results_dir, args.out, options, baseline=args.baseline)
    print(summary_line(target))
    return 0


def run_view(args: argparse.Namespace) -> int:
    """Print the view ``args.view`` of the results and write it to OUT/NAME.md and OUT/NAME.csv."""
    from analysis import columns as col
    from analysis.load import load_results, results_file
    from analysis.study import UNITS
    from analysis.views import write_view
    from analysis.views.common import ViewOptions

    table = load_results(args.results_dir)
    if args.baseline is not None and args.baseline not in set(table[col.MODEL]):
        raise UserError(f"--baseline '{args.baseline}' is not a model in the results; models: "
                        f"{', '.join(sorted(set(table[col.MODEL])))}")
    path = results_file(args.results_dir)
    out = args.out if args.out is not None else path.parent  # an explicit --out was checked before the command ran
    options = ViewOptions(baseline=args.baseline, compute=args.compute, unit=UNITS[args.compute])
    print(write_view(args.view, table, out, options, source=str(path)), end="")
    print(f"wrote {out / f'{args.view}.md'} and {out / f'{args.view}.csv'}")
    return 0
