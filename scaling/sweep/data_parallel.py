"""A sweep trial on several data-parallel workers: a Ray Train ``TorchTrainer`` run inside the Tune trial.

With ``resources.workers: N`` > 1 the trial's Tune function (:func:`scaling.sweep.trainable.run_trial`)
starts a ``TorchTrainer`` of N workers (``resources.cpu``/``gpu`` each; gloo on CPU, NCCL on
GPUs), as Ray Train V2 runs under Tune: the trainer's workers reserve their own resources and
``TuneReportCallback`` forwards rank 0's reports to the trial. Every worker runs the same
``scaling.train.train(config)`` with a :class:`~scaling.distributed.DataParallel`, and reports
the same numbered evaluations and final record (:class:`~scaling.sweep.trainable.TuneCheckpoints`
through Ray Train's session; rank 0 writes the checkpoints, Ray Train restarts a worker group
that died, ``checkpoint.max_failures`` times, from the last one).

Failures every worker meets alike (divergence: the loss is all-reduced; a config or data error)
are reported as the trial's result by each worker; anything else ends the worker group, and
the trial records the first worker's error.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from core.errors import UserError
from scaling.config import run_config_from_dict
from scaling.distributed import DataParallel
from scaling.divergence import TrainingDiverged
from scaling.sweep.reports import completed_report, failure_report
from scaling.sweep.trainable import TuneCheckpoints
from scaling.train import train

TRAIN_RUN_NAME = "ray-train"  # the Ray Train run's folder inside the trial's folder
AGREED_FAILURES = (TrainingDiverged, UserError)  # raised by every worker at the same point


class TrainWorkerSession:
    """Where a Ray Train worker reports (every worker, the same metrics) and finds its checkpoint."""

    def __init__(self, rank: int) -> None:
        self.saves_state = rank == 0

    def report(self, metrics: dict[str, Any], folder: str | None = None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None)

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint()


def train_worker(spec: dict[str, Any]) -> None:
    """One worker of a trial: ``train(config)`` on its share of each step; every worker reports."""
    import ray.train
    import ray.train.torch

    rank = ray.train.get_context().get_world_rank()
    _quiet_report_lines()
    torch.set_num_threads(max(1, int(spec["cpu"])))
    device = ray.train.torch.get_device() if spec["gpu"] else torch.device("cpu")
    session = TrainWorkerSession(rank)
    checkpoints = TuneCheckpoints(spec.get("checkpoint_every", 0), None, session)
    started = time.perf_counter()
    try:
        result = train(
            run_config_from_dict(spec["config"]),
            out_dir=Path(spec["trial_dir"]) / "train" if rank == 0 else None,
            on_evaluation=checkpoints.on_evaluation,
            progress=False,
            checkpoints=checkpoints,
            parallel=DataParallel.from_process_group(device),
        )
    except AGREED_FAILURES as error:
        checkpoints.flush()
        session.report(failure_report(error, time.perf_counter() - started))
        return
    session.report(completed_report(result))


def _quiet_report_lines() -> None:
    """Silence Ray Train's INFO line per report per worker (every metric, printed on the driver).

    Ray 2.60 logs it on a logger named after its module file, which ``LoggingConfig`` does not reach.
    """
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:  # another Ray layout: its lines stay
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def run_data_parallel_trial(spec: dict[str, Any], trial_dir: Path) -> None:
    """Run the trial ``spec`` on ``spec['workers']`` Ray Train workers; its reports reach Tune from rank 0."""
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    use_gpu = spec["gpu"] > 0
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={**spec, "trial_dir": str(trial_dir)},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=spec["workers"], use_gpu=use_gpu,
                                     resources_per_worker={"CPU": spec["cpu"], **({"GPU": spec["gpu"]} if use_gpu else {})}),
        run_config=RunConfig(
            name=TRAIN_RUN_NAME,
            storage_path=str(trial_dir),
            failure_config=FailureConfig(max_failures=spec.get("max_failures", 0)),
            checkpoint_config=CheckpointConfig(num_to_keep=1),  # the latest state is all a restart needs
            callbacks=[TuneReportCallback()],
            logging_config=LoggingConfig(log_level="WARNING"),  # not a line per report from every worker
        ),
    )
    started = time.perf_counter()
    try:
        trainer.fit()
    except Exception as error:  # the worker group failed beyond its restarts: the trial's result
        tune.report(failure_report(first_worker_error(error), time.perf_counter() - started))


def require_ray_train_v2() -> None:
    """Refuse multi-worker trials on a Ray without Train V2 (its Tune integration is what runs them)."""
    import ray
    import ray.train

    enabled = getattr(ray.train, "is_v2_enabled", None)
    if enabled is None or not enabled():
        raise UserError(f"resources.workers > 1 runs trials on Ray Train V2, which Ray {ray.__version__} does not "
                        "enable; upgrade Ray (2.5x or later) or set RAY_TRAIN_V2_ENABLED=1")


def first_worker_error(error: BaseException) -> BaseException:
    """The lowest-ranked worker's own exception inside Ray Train's ``WorkerGroupError``, else ``error``."""
    failures = getattr(error, "worker_failures", None) or {}
    return failures[min(failures)] if failures else error
