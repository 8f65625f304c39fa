"""The driver-side book of a running sweep: trial events in, trial records and progress lines out.

Ray Tune calls back on the driver when a trial starts, reports, ends or errors; the runner
forwards those events here (no Ray in this module, so it is tested with plain dicts). The
driver is the only writer of trial records, whether the workers are local or remote, and
each record is rewritten whole after every event. Evaluations are numbered by the trial: a trial
restarted from a checkpoint says how many it has done, and an evaluation it reports again
replaces the one with its number, so none is lost or repeated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core import results_schema as schema
from scaling.sweep.expand import Trial
from scaling.sweep.records import SweepStore, new_record
from scaling.sweep.reports import EVALUATION, EVALUATIONS_DONE, FINAL, REPORT_KIND, START
from scaling.sweep.table import measures
from scaling.train import default_selection_metric

Log = Callable[[str], None]

# Keys of a final report kept in the record (Tune adds its own bookkeeping keys to every result).
FINAL_KEYS = (schema.STATUS, schema.FAILURE_REASON, *schema.PROGRESS_COLUMNS, *schema.TOTAL_COLUMNS)


class TrialBook:
    """Keeps one record per trial of this run up to date on disk and prints concise progress."""

    def __init__(self, store: SweepStore, trials: list[Trial], previous: dict[str, dict[str, Any]], log: Log,
                 heartbeat_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.trials = {trial.trial_id: trial for trial in trials}
        # Each trial's previous attempt's record: its attempt number, and its evaluations, kept aside until the
        # trial says where it starts (a restored checkpoint's evaluations are recorded again).
        self.previous = dict(previous)
        self.records: dict[str, dict[str, Any]] = {}
        self.log = log
        self.heartbeat_seconds = heartbeat_seconds
        self.clock = clock
        self.last_heartbeat = clock()
        self.started_at: dict[str, float] = {}

    def started(self, trial_id: str) -> None:
        trial = self.trials[trial_id]
        self.previous[trial_id] = self.records.get(trial_id) or self.previous.get(trial_id, {})
        attempt = self.previous[trial_id].get("attempt", 0) + 1
        self.records[trial_id] = new_record(trial, attempt)
        self.started_at[trial_id] = self.clock()
        self.store.write_record(self.records[trial_id])
        again = f" (attempt {attempt})" if attempt > 1 else ""
        self.log(f"start    {trial_id}  {_describe(trial)}{again}")

    def reported(self, trial_id: str, report: dict[str, Any]) -> None:
        record = self.records[trial_id]
        if report.get(REPORT_KIND) == START:  # those after its checkpoint are run again
            # A restart inside this attempt (Ray Train restarting a multi-worker trial's worker group)
            # continues this record; a new attempt continues the previous one's.
            earlier = record["evaluations"] or self.previous.get(trial_id, {}).get("evaluations", [])
            record["evaluations"] = list(earlier[:report[EVALUATIONS_DONE]])
        elif report.get(REPORT_KIND) == EVALUATION:
            number = report.get(EVALUATIONS_DONE, len(record["evaluations"]) + 1)
            record["evaluations"][number - 1:] = [measures(report)]
        elif report.get(REPORT_KIND) == FINAL:
            record["final"] = measures(report, FINAL_KEYS)
            record["status"] = report["status"]
            record["failure_reason"] = report.get("failure_reason")
        self.store.write_record(record)

    def ended(self, trial_id: str, error: tuple[str, str] | None = None) -> None:
        """The trial's worker finished; ``error`` is (status, reason) when Ray saw it crash."""
        record = self.records[trial_id]
        if error is not None:
            record["status"], record["failure_reason"] = error
        elif record["status"] == schema.RUNNING:  # returned without a final report: should not happen, but say so
            record["status"], record["failure_reason"] = schema.FAILED, "the trial ended without a final report"
        self.store.write_record(record)
        self.log(f"{record['status']:<8} {trial_id}  {self._outcome(record)}")

    def heartbeat(self, force: bool = False) -> None:
        """Every ``heartbeat_seconds``, one line: how many trials finished and where the running ones are."""
        now = self.clock()
        if not force and now - self.last_heartbeat < self.heartbeat_seconds:
            return
        self.last_heartbeat = now
        finished = [r for r in self.records.values() if r["status"] != schema.RUNNING]
        running = [r for r in self.records.values() if r["status"] == schema.RUNNING]
        failed = sum(r["status"] in schema.FAILED_STATUSES for r in finished)
        parts = [f"{len(finished)}/{len(self.trials)} finished" + (f" ({failed} failed)" if failed else "")]
        if running:
            parts.append(f"{len(running)} running: " + "; ".join(self._position(r) for r in running[:4]))
        self.log("progress " + ", ".join(parts))

    def _position(self, record: dict[str, Any]) -> str:
        if not record["evaluations"]:
            return f"{record['trial_id']} starting"
        last = record["evaluations"][-1]
        metric = self._selection_metric(record)
        value = last.get(metric)
        shown = f" {metric}={value:.4f}" if isinstance(value, float) else ""
        return f"{record['trial_id']} step {last.get('step')}{shown}"

    def _outcome(self, record: dict[str, Any]) -> str:
        seconds = self.clock() - self.started_at.get(record["trial_id"], self.clock())
        if record["status"] != schema.COMPLETED:
            return f"{record['failure_reason']} ({seconds:.0f} s)"
        last = record["evaluations"][-1] if record["evaluations"] else {}
        metric = self._selection_metric(record)
        best = [e[metric] for e in record["evaluations"] if isinstance(e.get(metric), float)]
        shown = ""
        if best:
            shown = f"  best {metric} {max(best) if schema.higher_is_better(metric) else min(best):.4f}"
        return f"step {last.get('step')}  {last.get('pf_days', 0.0):.3g} PF-days{shown}  ({seconds:.0f} s)"

    def _selection_metric(self, record: dict[str, Any]) -> str:
        config = self.trials[record["trial_id"]].config
        return f"valid/{config.eval.selection_metric or default_selection_metric(config.data.task)}"


def _describe(trial: Trial) -> str:
    point = " ".join(f"{key}={value}" for key, value in trial.point.items())
    return f"{trial.model} {point} seed={trial.config.seed}".replace("  ", " ")
