"""Running a sweep on Ray Tune, embedded on this machine or on an existing cluster.

Given a :class:`~scaling.sweep.plan.SweepPlan` (every trial validated, those to run chosen),
``run_sweep`` starts or connects to Ray, builds a ``Tuner`` over the
function trainable (one grid point per trial id), forwards Tune's trial events to the
:class:`~scaling.sweep.recorder.TrialBook`, and rebuilds the results table at the end, also
when interrupted.

Where Ray runs: with ``RAY_ADDRESS`` set (``ray job submit`` sets it for the entrypoint) the
driver connects to that cluster; otherwise it starts Ray embedded, with this machine's cores.
Either way the project's packages travel to the workers as ``runtime_env`` ``py_modules``,
so the workers need the dependencies (torch, ray, ...) but not this checkout.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.exceptions import OutOfMemoryError as RayOutOfMemoryError

from core.configtools import to_dict
from core.errors import UserError
from core.results_schema import FAILED, MANIFEST, RUNNING
from scaling.sweep.data_parallel import require_ray_train_v2
from scaling.sweep.expand import Trial
from scaling.sweep.lock import SweepLock
from scaling.sweep.plan import SweepPlan, replan
from scaling.sweep.recorder import Log, TrialBook
from scaling.sweep.records import TUNE_DIR, Manifest, SweepStore
from scaling.sweep.reports import classify_failure
from scaling.sweep.table import rebuild_results
from scaling.sweep.tracking import file_store_allowed, mlflow_uri, tracking_callbacks
from scaling.sweep.trainable import run_trial

PROJECT_PACKAGES = ("core", "scaling", "model", "kernels")  # what trials import; analysis/ never runs in a trial


JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a submitted entrypoint


def project_runtime_env(job_config_json: str | None = None) -> dict[str, Any]:
    """The Ray runtime_env that ships this project's packages to every worker.

    Under ``ray job submit`` (``job_config_json`` is the job's config) the job's own runtime_env
    already reaches every worker, and Ray refuses a driver that sets one of its fields again:
    only the fields the job left unset are added (a job that ships ``py_modules`` ships the project).
    """
    directories = [str(Path(importlib.import_module(name).__file__).parent) for name in PROJECT_PACKAGES]
    ours = {"py_modules": directories, "excludes": ["__pycache__", "*.pyc"]}
    if not job_config_json:
        return ours
    submitted = json.loads(job_config_json).get("runtime_env") or {}
    return {} if "py_modules" in submitted else {key: value for key, value in ours.items() if key not in submitted}


def connect_ray() -> bool:
    """Join the cluster at RAY_ADDRESS, or start Ray embedded here; True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    common = {"runtime_env": project_runtime_env(os.environ.get(JOB_CONFIG_VARIABLE)), "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, **common)
    return True


def check_cluster_fits(trials: list[Trial]) -> None:
    """Refuse trials this machine's Ray could never run (a trial would otherwise wait forever)."""
    available = ray.cluster_resources()
    for trial in trials:
        for name, wanted in trial.resources.total().items():
            if wanted > available.get(name, 0):
                raise UserError(
                    f"trial {trial.trial_id} asks for {wanted:g} {name} but this machine's Ray has "
                    f"{available.get(name, 0):g}; lower resources.{name.lower()} or run on a cluster (RAY_ADDRESS=...)"
                )


DRIVER_ONLY = {"memory": 2**20}  # what a multi-worker trial's own Tune process reserves: 1 MiB, no core


class TrialResources:
    """Per-trial resource request for ``tune.with_resources`` (groups may differ).

    A multi-worker trial's Tune process only drives a Ray Train run, whose workers reserve their
    own resources (Ray Train V2 schedules them apart from the trial): the trial holds no core,
    only a token of memory (Tune refuses an empty request).
    """

    def __init__(self, trials: list[Trial]) -> None:
        self.requests = {t.trial_id: {"CPU": t.resources.cpu, "GPU": t.resources.gpu} if t.resources.workers == 1
                         else DRIVER_ONLY for t in trials}

    def __call__(self, config: dict[str, Any]) -> tune.PlacementGroupFactory:
        return tune.PlacementGroupFactory([self.requests[config["trial_id"]]])


def trial_name(trial: Any) -> str:
    """Tune's trial name and folder: our trial id."""
    return trial.config["trial_id"]


class TuneRecorder(tune.Callback):
    """Forwards Ray Tune's trial events (on the driver) to the sweep's :class:`TrialBook`."""

    def __init__(self, book: TrialBook) -> None:
        self.book = book

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.book.started(trial.config["trial_id"])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.book.reported(trial.config["trial_id"], result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.book.ended(trial.config["trial_id"])
        rebuild_results(self.book.store)  # the table stays current while a long sweep runs

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.book.ended(trial.config["trial_id"], error=crash_reason(trial))
        rebuild_results(self.book.store)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.book.heartbeat()


def crash_reason(trial: Any) -> tuple[str, str]:
    """(status, reason) of a trial whose worker crashed (the trainable itself never raises)."""
    error = trial.get_pickled_error()
    if error is None:
        return FAILED, "the trial's worker crashed (no error was recorded)"
    if isinstance(error, RayOutOfMemoryError):
        return FAILED, "out of memory: Ray's memory monitor killed the worker"
    cause = getattr(error, "cause", None)
    return classify_failure(cause if isinstance(cause, BaseException) else error)


def last_checkpoint(store: SweepStore, trial_id: str) -> str | None:
    """The newest checkpoint Ray Tune kept for ``trial_id`` in this sweep's experiments, or None."""
    experiments = store.filesystem.get_file_info(pafs.FileSelector(f"{store.path}/{TUNE_DIR}", allow_not_found=True))
    for experiment in sorted((info.base_name for info in experiments if info.type == pafs.FileType.Directory), reverse=True):
        trial_folder = f"{store.path}/{TUNE_DIR}/{experiment}/{trial_id}"
        found = store.filesystem.get_file_info(pafs.FileSelector(trial_folder, allow_not_found=True))
        checkpoints = sorted(info.base_name for info in found
                             if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"))
        if checkpoints:  # experiment names start with their time: the newest run that saved one
            return f"{store.root}/{TUNE_DIR}/{experiment}/{trial_id}/{checkpoints[-1]}"
    return None


def trial_payload(plan: SweepPlan) -> dict[str, dict[str, Any]]:
    """What each trial's worker needs: its config, cores, checkpoint interval and where to resume from.

    A trial a killed driver left running resumes from its last checkpoint (when checkpoints are on);
    failed and diverged ones (``--retry-failed``) start over.
    """
    every = plan.sweep.checkpoint.every
    payload = {}
    for trial in plan.to_run:
        interrupted = plan.records.get(trial.trial_id, {}).get("status") == RUNNING
        payload[trial.trial_id] = {"config": to_dict(trial.config), "cpu": trial.resources.cpu, "checkpoint_every": every,
                                   "workers": trial.resources.workers, "gpu": trial.resources.gpu,
                                   "max_failures": plan.sweep.checkpoint.max_failures,
                                   "resume_from": last_checkpoint(plan.store, trial.trial_id) if every and interrupted else None}
    return payload


def build_tuner(plan: SweepPlan, book: TrialBook) -> tune.Tuner:
    payload = trial_payload(plan)
    trainable = tune.with_resources(tune.with_parameters(run_trial, trials=payload), TrialResources(plan.to_run))
    return tune.Tuner(
        trainable,
        param_space={"trial_id": tune.grid_search([t.trial_id for t in plan.to_run])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=plan.sweep.max_concurrent_trials or None,
            # A reused worker keeps torch and the project imported between trials: seconds per trial.
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}",  # one Tune experiment per invocation
            storage_path=plan.store.tune_storage,
            callbacks=[TuneRecorder(book), *tracking_callbacks(plan.sweep.tracking, plan.store, plan.sweep.name, plan.to_run)],
            verbose=0,  # progress comes from the TrialBook's concise lines
            # A trial's own failures are results (retry with --retry-failed); only a dead worker is restarted.
            failure_config=tune.FailureConfig(max_failures=plan.sweep.checkpoint.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # the latest state is all a restart needs
        ),
    )


def run_sweep_exclusively(plan: SweepPlan, resume: bool, retry_failed: bool, log: Log) -> SweepPlan:
    """Run the sweep as its storage's only driver; returns the plan that ran.

    Holds the storage lock (a second driver is refused), reads the records again under it (another
    driver may have finished trials since ``plan`` was made) and removes the temporary files a
    killed driver left, then runs :func:`run_sweep`.
    """
    with SweepLock(plan.store).held(log):
        plan = replan(plan, resume, retry_failed)
        removed = plan.store.remove_temporaries()
        if removed:
            log(f"removed {removed} temporary files a killed sweep left in {plan.store.root}")
        try:
            run_sweep(plan, log)
        except Exception as error:
            if not _disk_full(error):
                raise
            raise UserError(f"sweep storage {plan.store.root} is full ({_disk_full(error)}); free space and continue "
                            "with --resume (finished trials are kept)") from None
    return plan


def _disk_full(error: BaseException | None) -> str | None:
    """The message of a full-disk OSError anywhere in ``error``'s chain (Ray Tune wraps what callbacks raise)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return error.strerror or str(error)
        error = error.__cause__ or error.__context__
    return None


def run_sweep(plan: SweepPlan, log: Log) -> None:
    """Run ``plan.to_run`` on Ray Tune; the results table is rebuilt whatever happens."""
    manifest = Manifest.of(plan.sweep.name, plan.trials).to_json()
    if not plan.to_run:
        log("every trial already has a final record; nothing to run")
        plan.store.write_json(MANIFEST, manifest)
        rebuild_results(plan.store)
        return
    started_ray = connect_ray()
    try:
        if not os.environ.get("RAY_ADDRESS"):  # a local cluster cannot grow: refuse what it cannot run
            check_cluster_fits(plan.to_run)
        if any(trial.resources.workers > 1 for trial in plan.to_run):
            require_ray_train_v2()
        plan.store.write_json(MANIFEST, manifest)
        log(f"running {len(plan.to_run)} of {len(plan.trials)} trials; results in {plan.store.root}")
        book = TrialBook(plan.store, plan.to_run, plan.records, log)
        try:
            with file_store_allowed(mlflow_uri(plan.sweep.tracking, plan.store)):
                build_tuner(plan, book).fit()
            book.heartbeat(force=True)
        finally:
            rebuild_results(plan.store)
    finally:
        if started_ray:
            ray.shutdown()
