"""The Ray Tune function trainable: a thin adapter that runs ``scaling.train.train`` for one trial.

It reports where the trial starts (0 evaluations done, or those of the checkpoint it resumes),
every evaluation with ``tune.report`` as it happens (numbered, with the trial's state attached
every ``checkpoint.every`` evaluations), then one final report (test metrics, or the failure
status and reason). A trial that raises, runs out of memory or diverges does not raise out of the
trainable: its failure is a result of the sweep, recorded like any other, and the sweep goes on.
A trial whose worker dies is restarted by Ray (``checkpoint.max_failures``) from its last
checkpoint; the numbering lets the driver replace, never repeat, evaluations it sees twice.
A trial with ``resources.workers`` > 1 runs on Ray Train instead (:mod:`scaling.sweep.data_parallel`),
reporting through the same :class:`TuneCheckpoints` from each of its workers.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from scaling import checkpoint as training_state
from scaling.config import run_config_from_dict
from scaling.sweep.reports import EVALUATIONS_DONE, completed_report, evaluation_report, failure_report, start_report
from scaling.train import BestCheckpoint, Run, train


def tune_checkpoint_class() -> type:
    """Ray Tune's Checkpoint (``ray.tune`` since Ray 2.4x; ``ray.train`` before)."""
    from ray import tune

    if hasattr(tune, "Checkpoint"):
        return tune.Checkpoint
    from ray.train import Checkpoint

    return Checkpoint


class TuneSession:
    """Where a one-worker trial reports and finds its checkpoints: Ray Tune's session."""

    saves_state = True  # this process writes the checkpoints it reports

    def report(self, metrics: dict[str, Any], folder: str | None = None) -> None:
        from ray import tune

        if folder is None:
            tune.report(metrics)
        else:
            tune.report(metrics, checkpoint=tune_checkpoint_class().from_directory(folder))

    def get_checkpoint(self) -> Any:
        from ray import tune

        return tune.get_checkpoint()


class TuneCheckpoints:
    """Reports each evaluation to Ray Tune, with the run's state attached every ``every`` evaluations.

    ``resume_from`` is a checkpoint to start from when Tune has none of its own for this trial
    (the last one of a killed driver's run, found by ``scaling.sweep.runner``). ``session`` is
    where reports go (Tune's, or a Ray Train worker's: :mod:`scaling.sweep.data_parallel`).
    """

    def __init__(self, every: int, resume_from: str | None = None, session: Any = None) -> None:
        self.every = every
        self.resume_from = resume_from
        self.session = session or TuneSession()
        self.pending: dict[str, Any] | None = None
        self.resumed_evaluations = 0

    def restore(self, run: Run, best: BestCheckpoint) -> None:
        saved = self.session.get_checkpoint() or (tune_checkpoint_class()(self.resume_from) if self.resume_from else None)
        if saved is not None:
            with saved.as_directory() as folder:
                training_state.restore(run, best, training_state.load(Path(folder)))
            self.resumed_evaluations = len(run.history)
        self.session.report(start_report(self.resumed_evaluations))

    def on_evaluation(self, entry: dict[str, Any]) -> None:
        """Hold the evaluation until ``evaluated``: its report carries the state saved after it."""
        self.pending = entry

    def flush(self) -> None:
        """Report an evaluation still held when the run failed (as it was reported before checkpoints)."""
        if self.pending is not None:
            self.session.report(evaluation_report(self.pending))
            self.pending = None

    def evaluated(self, run: Run, best: BestCheckpoint, final: bool) -> None:
        report = {**evaluation_report(self.pending), EVALUATIONS_DONE: len(run.history)}
        self.pending = None
        # No checkpoint: between checkpoints, at the last evaluation (the test metrics follow at once), and on
        # workers other than the one (rank 0) that saves the state every worker holds.
        if not self.every or final or len(run.history) % self.every or not self.session.saves_state:
            self.session.report(report)
            return
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            training_state.save(Path(folder), run, best)
            # Tune copies the folder to the trial's storage before report returns.
            self.session.report(report, folder)


def run_trial(tune_config: dict[str, Any], trials: dict[str, dict[str, Any]]) -> None:
    """Train the trial named by ``tune_config['trial_id']``; ``trials`` maps ids to
    {config, cpu, checkpoint_every, resume_from}."""
    from ray import tune

    spec = trials[tune_config["trial_id"]]
    if spec.get("workers", 1) > 1:
        from scaling.sweep.data_parallel import run_data_parallel_trial

        run_data_parallel_trial(spec, Path(tune.get_context().get_trial_dir()))
        return
    # Ray reserves ``cpu`` cores for the trial; torch would otherwise use every core of the node.
    torch.set_num_threads(max(1, int(spec["cpu"])))
    started = time.perf_counter()
    checkpoints = TuneCheckpoints(spec.get("checkpoint_every", 0), spec.get("resume_from"))
    try:
        config = run_config_from_dict(spec["config"])
        result = train(
            config,
            # Not the trial folder itself: Tune keeps its own result.json there.
            out_dir=Path(tune.get_context().get_trial_dir()) / "train",
            on_evaluation=checkpoints.on_evaluation,
            progress=False,
            checkpoints=checkpoints,
        )
    except Exception as error:  # every failure is recorded; KeyboardInterrupt and SystemExit still stop the trial
        _release_memory()
        checkpoints.flush()
        tune.report(failure_report(error, time.perf_counter() - started))
        return
    tune.report(completed_report(result))


def _release_memory() -> None:
    """Free what a failed trial held, so the next trial on a reused worker starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
