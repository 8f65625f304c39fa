"""``scaling sweep SWEEP.yaml [--resume] [--retry-failed] [--storage DIR] [--dry-run]``: run a sweep on Ray Tune."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.results_schema import RESULTS_FILE

if TYPE_CHECKING:
    from scaling.sweep.plan import SweepPlan

HELP = "run a sweep of trials on Ray Tune (embedded, or the cluster at RAY_ADDRESS); writes STORAGE/NAME/results.parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, help="sweep YAML (see sweeps/)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a sweep: skip trials with a final record, rerun unfinished ones")
    parser.add_argument("--retry-failed", action="store_true",
                        help="like --resume, and also rerun failed and diverged trials")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help="results root (local folder or URI such as s3://bucket/sweeps), overriding the sweep's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sweep key, e.g. --set resources.gpu=0 --set budget.epochs=5 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the expanded trials and exit")


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def format_trials(plan: SweepPlan) -> str:
    """The expanded trials of a dry run, one table per group: axes, seed, resources, what will happen."""
    import pandas as pd

    will_run = {trial.trial_id for trial in plan.to_run}
    sections = []
    for group in dict.fromkeys(trial.group for trial in plan.trials):
        rows = [
            {"trial_id": t.trial_id, "model": t.model, "task": t.config.data.task, **t.point, "seed": t.config.seed,
             "cpu": t.resources.cpu, "gpu": t.resources.gpu,
             "recorded": plan.records.get(t.trial_id, {}).get("status", "-"),
             "action": "run" if t.trial_id in will_run else "skip"}
            for t in plan.trials if t.group == group
        ]
        sections.append(f"group {group} ({len(rows)} trials)\n" + pd.DataFrame(rows).to_string(index=False))
    return "\n\n".join(sections)


def run(args: argparse.Namespace) -> int:
    from scaling.sweep.plan import plan_sweep

    plan = plan_sweep(args.sweep, args.storage, args.resume, args.retry_failed, args.overrides)
    if args.dry_run:
        print(format_trials(plan))
        print(f"\n{len(plan.trials)} trials, {len(plan.to_run)} to run; results would go to {plan.store.root}")
        return 0

    from scaling.sweep.records import finished
    from scaling.sweep.runner import run_sweep_exclusively
    from scaling.sweep.summary import format_summary
    from scaling.sweep.table import read_results

    started = time.perf_counter()
    plan = run_sweep_exclusively(plan, args.resume, args.retry_failed, log)
    print(format_summary(read_results(plan.store.root)))
    log(f"sweep {plan.sweep.name}: {time.perf_counter() - started:.0f} s; table at {plan.store.root}/{RESULTS_FILE}")
    records = plan.store.read_records()
    unfinished = [t for t in plan.to_run if not finished(records.get(t.trial_id))]
    if unfinished:
        log(f"{len(unfinished)} trials did not finish; continue with: scaling sweep {args.sweep} --resume")
        return 1
    return 0
