"""Planning a sweep run: validate every trial, read what is on disk, choose what runs now (no Ray here)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.results_schema import COMPLETED, FAILED_STATUSES
from scaling.sweep.expand import Trial, expand_sweep
from scaling.sweep.records import SweepStore
from scaling.sweep.spec import SweepConfig, load_sweep


@dataclass(frozen=True)
class SweepPlan:
    sweep: SweepConfig
    trials: list[Trial]  # every trial of the sweep, in order
    to_run: list[Trial]  # those this invocation runs
    store: SweepStore
    records: dict[str, dict[str, Any]]  # records already on disk


def plan_sweep(sweep_file: Path, storage: str | None, resume: bool, retry_failed: bool,
               overrides: Sequence[str] = ()) -> SweepPlan:
    """Validate the whole sweep and pick the trials to run; raises a one-line UserError on any problem."""
    sweep = load_sweep(sweep_file, overrides)
    trials = expand_sweep(sweep, sweep_file)
    store = SweepStore(storage if storage is not None else sweep.storage, sweep.name)
    warning = store.check_writable_location()
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    records = store.read_records()
    to_run = select_trials(trials, records, resume, retry_failed, store.root)
    return SweepPlan(sweep, trials, to_run, store, records)


def replan(plan: SweepPlan, resume: bool, retry_failed: bool) -> SweepPlan:
    """``plan`` with the records on disk read again (once this driver holds the sweep's lock)."""
    records = plan.store.read_records()
    to_run = select_trials(plan.trials, records, resume, retry_failed, plan.store.root)
    return SweepPlan(plan.sweep, plan.trials, to_run, plan.store, records)


def select_trials(
    trials: list[Trial], records: dict[str, dict[str, Any]], resume: bool, retry_failed: bool, where: str
) -> list[Trial]:
    """The trials this invocation runs, given the records already on disk.

    A fresh sweep runs everything, and refuses to start over records it would mix with. On
    resume, completed trials are skipped, and so are failed and diverged ones unless
    ``retry_failed``; a trial with no record or one left running by a killed sweep runs again
    from the start.
    """
    known = [t for t in trials if t.trial_id in records]
    if known and not (resume or retry_failed):
        raise UserError(
            f"{where} already holds {len(known)} trial records of this sweep; pass --resume to continue it "
            "(--retry-failed to also rerun failed trials) or --storage to start elsewhere"
        )
    selected = []
    for trial in trials:
        status = records.get(trial.trial_id, {}).get("status")
        if status == COMPLETED or (status in FAILED_STATUSES and not retry_failed):
            continue
        selected.append(trial)
    return selected
