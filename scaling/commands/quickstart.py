"""``scaling quickstart``: the main job in one command: the quickstart sweep, then its analysis report.

Runs ``sweeps/quickstart.yaml`` (HSTU vs DCN-v2 at three sizes each on a small synthetic
industrial ranking stream, streaming regime) on embedded Ray on this machine, then
``scaling analyze`` on its results, and prints where the report is. Running it again resumes:
finished trials are kept, so a second call only redoes what is missing and rewrites the report.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from core.errors import UserError

HELP = "run sweeps/quickstart.yaml on this machine, then analyse it (the README's main job)"

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweep", type=Path, default=REPOSITORY_ROOT / "sweeps" / "quickstart.yaml",
                        help="the sweep to run (default: the repository's sweeps/quickstart.yaml)")
    parser.add_argument("--storage", default="runs/sweeps", metavar="DIR", help="results root (default: runs/sweeps)")
    parser.add_argument("--fresh", action="store_true", help="discard earlier quickstart results and start over")


def run(args: argparse.Namespace) -> int:
    from analysis.report import analyze, summary_line
    from analysis.study import Options
    from scaling.commands.sweep import log
    from scaling.sweep.plan import plan_sweep
    from scaling.sweep.runner import run_sweep
    from scaling.sweep.summary import format_summary
    from scaling.sweep.table import read_results

    if not args.sweep.is_file():
        raise UserError(f"{args.sweep}: quickstart sweep not found; run from a clone of the repository or pass --sweep")
    started = time.perf_counter()
    if args.fresh:
        _discard(plan_sweep(args.sweep, args.storage, resume=True, retry_failed=False).store.root)
    plan = plan_sweep(args.sweep, args.storage, resume=True, retry_failed=True)
    log(f"quickstart: {len(plan.trials)} trials ({len(plan.to_run)} to run), results under {plan.store.root}")
    run_sweep(plan, log)
    print(format_summary(read_results(plan.store.root)))
    log("analysing: power-law fits with bootstrap intervals, saturation, figures")
    options = Options(jobs=min(len(os.sched_getaffinity(0)), 8))
    report = analyze(Path(plan.store.root), None, options)
    log(f"quickstart done in {time.perf_counter() - started:.0f} s")
    print(summary_line(report))
    return 0


def _discard(root: str) -> None:
    import shutil

    if "://" in root:
        raise UserError(f"--fresh only clears local results; remove {root} yourself")
    shutil.rmtree(root, ignore_errors=True)
