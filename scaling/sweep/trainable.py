"""The Ray Tune function trainable: a thin adapter that runs ``scaling.train.train`` for one trial.

It reports every evaluation with ``tune.report`` as it happens, then one final report (test
metrics, or the failure status and reason). A trial that raises, runs out of memory or
diverges does not raise out of the trainable: its failure is a result of the sweep, recorded
like any other, and the sweep goes on.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import torch

from scaling.config import run_config_from_dict
from scaling.sweep.reports import completed_report, evaluation_report, failure_report
from scaling.train import train


def run_trial(tune_config: dict[str, Any], trials: dict[str, dict[str, Any]]) -> None:
    """Train the trial named by ``tune_config['trial_id']``; ``trials`` maps ids to {config, cpu}."""
    from ray import tune

    spec = trials[tune_config["trial_id"]]
    # Ray reserves ``cpu`` cores for the trial; torch would otherwise use every core of the node.
    torch.set_num_threads(max(1, int(spec["cpu"])))
    started = time.perf_counter()
    try:
        config = run_config_from_dict(spec["config"])
        result = train(
            config,
            # Not the trial folder itself: Tune keeps its own result.json there.
            out_dir=Path(tune.get_context().get_trial_dir()) / "train",
            on_evaluation=lambda entry: tune.report(evaluation_report(entry)),
            progress=False,
        )
    except Exception as error:  # every failure is recorded; KeyboardInterrupt and SystemExit still stop the trial
        _release_memory()
        tune.report(failure_report(error, time.perf_counter() - started))
        return
    tune.report(completed_report(result))


def _release_memory() -> None:
    """Free what a failed trial held, so the next trial on a reused worker starts clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
