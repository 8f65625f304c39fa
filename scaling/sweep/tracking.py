"""Experiment tracking of a sweep through Ray Tune's own logger callbacks: MLflow and TensorBoard.

With ``tracking.mlflow`` every trial is one MLflow run (named by its trial id, in an experiment
named by the sweep) holding its full run config as parameters (dotted keys), its group, model and
seed as tags, and every report as metrics: each evaluation's ``valid/...`` metrics, ``flops`` and
``pf_days``, then the test metrics and totals (MLflow names hold no '@': ``valid/ndcg_at_10``).
``local`` is a file store in ``STORAGE/NAME/mlflow`` (no server; ``mlflow ui --backend-store-uri``
reads it); any other value is a tracking URI.
``tracking.tensorboard`` adds Tune's TensorBoardX callback (event files in each trial's folder
under ``STORAGE/NAME/tune``; ``tensorboard --logdir STORAGE/NAME/tune``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from core.configtools import to_dict
from core.errors import UserError
from scaling.sweep.expand import Trial
from scaling.sweep.records import SweepStore
from scaling.sweep.spec import Tracking

LOCAL = "local"
MLFLOW_FOLDER = "mlflow"
# MLflow 3 refuses its file store unless this is set: the store is in maintenance, not removed.
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def mlflow_uri(tracking: Tracking, store: SweepStore) -> str | None:
    """The MLflow tracking URI of a sweep: its own file store for ``local``, else as given (None: off)."""
    if tracking.mlflow is None:
        return None
    if tracking.mlflow == LOCAL:
        if "://" in store.root:
            raise UserError(f"sweep key 'tracking.mlflow': 'local' needs a local storage, not {store.root}; "
                            "give an MLflow tracking URI instead")
        return f"file://{store.root}/{MLFLOW_FOLDER}"
    return tracking.mlflow


def tracking_callbacks(tracking: Tracking, store: SweepStore, sweep_name: str, trials: list[Trial]) -> list[Any]:
    """The Ray Tune callbacks ``tracking`` asks for (none when it asks for nothing)."""
    callbacks: list[Any] = []
    uri = mlflow_uri(tracking, store)
    if uri is not None:
        callbacks.append(_mlflow_callback(uri, sweep_name, trials))
    if tracking.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    return callbacks


def _mlflow_callback(uri: str, sweep_name: str, trials: list[Trial]) -> Any:
    try:
        from ray.air.integrations.mlflow import MLflowLoggerCallback
        import mlflow  # noqa: F401  (MLflowLoggerCallback imports it only when the sweep starts)
    except ImportError:
        raise UserError("sweep key 'tracking.mlflow' needs MLflow: pip install -e '.[tracking]'") from None
    by_id = {trial.trial_id: trial for trial in trials}

    class TrialConfigMLflowLogger(MLflowLoggerCallback):
        """Ray's MLflow callback, with each trial's run config (not Tune's one-key config) as parameters."""

        def log_trial_start(self, trial: Any) -> None:
            started = trial in self._trial_runs
            super().log_trial_start(trial)
            if started:  # restarted from a checkpoint: the same MLflow run goes on
                return
            ours = by_id[trial.config["trial_id"]]
            run_id = self._trial_runs[trial]
            self.mlflow_util.log_params(run_id=run_id, params_to_log=flat_config(to_dict(ours.config)))
            client = self.mlflow_util._get_client()
            for key, value in {"group": ours.group, "model": ours.model, "family": ours.family,
                               "seed": ours.config.seed}.items():
                client.set_tag(run_id, key, str(value))

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            super().log_trial_result(iteration, trial, {mlflow_metric_name(key): value for key, value in result.items()})

    return TrialConfigMLflowLogger(tracking_uri=uri, experiment_name=sweep_name, tags={"sweep": sweep_name})


def mlflow_metric_name(column: str) -> str:
    """A results-table column as an MLflow metric name, which may not hold '@': ``valid/ndcg@10`` -> ``valid/ndcg_at_10``."""
    return column.replace("@", "_at_")


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested run config as dotted keys (``model.hstu.rab``), the names the CLI and sweeps use."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@contextlib.contextmanager
def file_store_allowed(uri: str | None) -> Iterator[None]:
    """While a sweep logs to an MLflow file store, let MLflow 3 open it (restored afterwards)."""
    if uri is None or not uri.startswith("file:"):
        yield
        return
    before = os.environ.get(ALLOW_FILE_STORE)
    os.environ[ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_FILE_STORE, None)
        else:
            os.environ[ALLOW_FILE_STORE] = before
