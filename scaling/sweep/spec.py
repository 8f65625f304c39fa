"""The sweep config: typed sections read from a sweep YAML and checked before any trial is built.

A sweep names a base run config (a YAML file and/or an inline mapping), axes over any dotted
run-config key (a grid, crossed, and zipped blocks, stepped together), optional groups with
their own config and axes (HSTU over its knobs, each DLRM over its own), seeds, per-trial
resources and budget, where results go and how many trials run at once. Whether each axis
name and value is valid is checked when the trials are expanded (:mod:`scaling.sweep.expand`),
by the run config's own validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.configtools import SAFE_NAME, ConfigError, apply_overrides, from_dict, load_yaml, option, require


# budget field -> the run-config key it sets
BUDGET_KEYS: dict[str, str] = {
    "epochs": "train.epochs",
    "steps": "train.max_steps",
    "flops": "train.max_flops",
    "wall_seconds": "train.max_wall_seconds",
}


@dataclass(frozen=True)
class Resources:
    """What Ray reserves for each trial: one worker, or ``workers`` data-parallel workers on Ray Train."""

    cpu: float = option(1.0, "CPU cores per trial (per worker with workers > 1); each worker uses this many torch threads")
    gpu: float = option(0.0, "GPUs per trial (per worker with workers > 1; 1 on GPU workers; 0 trains on CPU)")
    workers: int = option(1, "data-parallel workers per trial: above 1 the trial is a Ray Train TorchTrainer run, "
                             "each step's batch (train.batch_size, the global batch) split across them, gradients "
                             "all-reduced (DDP: NCCL on GPUs, gloo on CPU); 1: the trial trains in its own process")

    def __post_init__(self) -> None:
        require(self.cpu > 0, "cpu", f"must be > 0; got {self.cpu}")
        require(self.gpu >= 0, "gpu", f"must be >= 0; got {self.gpu}")
        require(self.gpu <= 1 or float(self.gpu).is_integer(), "gpu",
                f"must be a whole number when above 1 (Ray shares only fractions of one GPU); got {self.gpu}")
        require(self.workers >= 1, "workers", f"must be >= 1; got {self.workers}")
        require(self.workers == 1 or self.gpu in (0, 1), "gpu",
                f"must be 0 or 1 with workers > 1 (NCCL needs one whole GPU per worker); got {self.gpu}")

    def total(self) -> dict[str, float]:
        """What the whole trial holds on the cluster: every worker's share."""
        return {"CPU": self.cpu * self.workers, "GPU": self.gpu * self.workers}


@dataclass(frozen=True)
class Budget:
    """How long each trial trains; every field that is set becomes the trial's train.* key."""

    epochs: int | None = option(None, "passes over the training data (sets train.epochs)")
    steps: int | None = option(None, "optimizer steps (sets train.max_steps)")
    flops: float | tuple[float, ...] | None = option(
        None, "cumulative training FLOPs (sets train.max_flops); a list is a grid axis of budgets, every trial "
              "shape at each: IsoFLOP profiles (sweeps/isoflop.yaml)")
    wall_seconds: float | None = option(None, "seconds since the trial started (sets train.max_wall_seconds)")

    def __post_init__(self) -> None:
        for name in BUDGET_KEYS:
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            require(all(v is None or v > 0 for v in values), name, f"must be > 0 or null; got {value}")
        if isinstance(self.flops, tuple):
            require(len(self.flops) >= 1 and len(set(self.flops)) == len(self.flops), "flops",
                    f"a list of budgets must be non-empty and without repeats; got {list(self.flops)}")

    def overrides(self) -> dict[str, Any]:
        """Run-config key -> value for every budget that is set to one value."""
        return {key: value for key, value in self._set().items() if not isinstance(value, tuple)}

    def axes(self) -> dict[str, list[Any]]:
        """Run-config key -> values for every budget given as a list: a grid axis of the sweep."""
        return {key: list(value) for key, value in self._set().items() if isinstance(value, tuple)}

    def _set(self) -> dict[str, Any]:
        return {key: getattr(self, name) for name, key in BUDGET_KEYS.items() if getattr(self, name) is not None}


@dataclass(frozen=True)
class CheckpointSettings:
    """Checkpoints of each trial through Ray Tune, and how often a trial whose worker died is restarted."""

    every: int = option(0, "save the trial's state (model, optimizer, data position, random streams, FLOPs, "
                           "history) every this many evaluations; 0: never (a restarted trial starts from step 0)")
    max_failures: int = option(0, "times Ray restarts a trial whose worker died (preemption, a lost node, a kill), "
                                  "from its last checkpoint; failures the trial itself reports are results, never retried")

    def __post_init__(self) -> None:
        require(self.every >= 0, "every", f"must be >= 0 (0: no checkpoints); got {self.every}")
        require(self.max_failures >= 0, "max_failures", f"must be >= 0; got {self.max_failures}")


@dataclass(frozen=True)
class Tracking:
    """Where every trial is also logged, through Ray Tune's logger callbacks (scaling.sweep.tracking)."""

    mlflow: str | None = option(None, "log each trial to MLflow: 'local' (a file store in STORAGE/NAME/mlflow) or a "
                                      "tracking URI (http://..., sqlite:///...); null: off. Needs .[tracking]")
    tensorboard: bool = option(False, "write TensorBoard event files for each trial (Ray Tune's TBXLoggerCallback) "
                                      "under STORAGE/NAME/tune; Tune also writes them unasked when tensorboardX is installed")

    def __post_init__(self) -> None:
        require(self.mlflow is None or bool(self.mlflow.strip()), "mlflow", "must be 'local', a tracking URI or null")


Axes = dict[str, list[Any]]  # dotted run-config key -> the values it takes


def _check_axes(grid: Axes, zips: list[Axes]) -> None:
    """Every axis has values, zipped lists match in length, and no key is swept twice."""
    for key, values in grid.items():
        require(len(values) > 0, f"grid.{key}", "has no values; give at least one or remove the axis")
    seen = set(grid)
    for index, block in enumerate(zips):
        require(len(block) > 0, f"zip[{index}]", "is empty; give at least one axis or remove the block")
        lengths = {key: len(values) for key, values in block.items()}
        for key, length in lengths.items():
            require(length > 0, f"zip[{index}].{key}", "has no values; give at least one or remove the axis")
        require(len(set(lengths.values())) == 1, f"zip[{index}]",
                f"lists stepped together must have the same length; got {lengths}")
        for key in block:
            require(key not in seen, f"zip[{index}].{key}", "is already an axis; sweep each key in one place")
            seen.add(key)


@dataclass(frozen=True)
class Group:
    """Trials sharing a config and axes of their own (e.g. one model family and its knobs)."""

    name: str = option(help="group label, used in trial ids; letters, digits, '.', '_' and '-'")
    config: dict[str, Any] = option({}, "run-config overrides for this group, a mapping like a run-config YAML")
    grid: Axes = option({}, "axes crossed as a grid: dotted run-config key -> list of values")
    zip: list[Axes] = option([], "blocks of axes stepped together; every list in a block has the same length")
    resources: Resources | None = option(None, "per-trial resources of this group (null: the sweep's)")

    def __post_init__(self) -> None:
        require(bool(SAFE_NAME.match(self.name)), "name",
                f"must be letters, digits, '.', '_' or '-' (it names trial folders); got {self.name!r}")
        _check_axes(self.grid, self.zip)


@dataclass(frozen=True)
class SweepConfig:
    name: str = option(help="sweep name: results go to STORAGE/NAME; letters, digits, '.', '_' and '-'")
    base: str | None = option(None, "run-config YAML the trials start from, relative to the sweep file")
    config: dict[str, Any] = option({}, "run-config overrides applied on top of base, a mapping like a run-config YAML")
    grid: Axes = option({}, "axes crossed as a grid, for every group: dotted run-config key -> list of values")
    zip: list[Axes] = option([], "blocks of axes stepped together, for every group; lists in a block share a length")
    groups: list[Group] = option([], "groups with their own config and axes (none: one group named 'main')")
    seeds: list[int] | None = option(
        None, "one trial per seed at every point (null: the config's seed); a seed varies initialisation, order, "
        "negatives and dropout on one dataset (sweep data.seed as an axis to vary the data too)"
    )
    resources: Resources = option(Resources, "per-trial resources (a group may set its own)")
    budget: Budget = option(Budget, "per-trial training budget (epochs, steps, FLOPs or wall time)")
    storage: str = option("runs/sweeps", "results root: a local folder or a URI Ray Tune accepts (s3://, gs://)")
    max_concurrent_trials: int = option(0, "trials running at once (0: as many as the cluster's resources allow)")
    checkpoint: CheckpointSettings = option(CheckpointSettings, "per-trial checkpoints and restarts after a worker dies")
    tracking: Tracking = option(Tracking, "experiment tracking of every trial (MLflow, TensorBoard)")

    def __post_init__(self) -> None:
        require(bool(SAFE_NAME.match(self.name)), "name",
                f"must be letters, digits, '.', '_' or '-' (it names the results folder); got {self.name!r}")
        _check_axes(self.grid, self.zip)
        names = [group.name for group in self.groups]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        require(not duplicated, "groups", f"group names must be unique; {duplicated} appear more than once")
        if self.seeds is not None:
            require(len(self.seeds) > 0, "seeds", "is empty; list at least one seed or use null for the config's seed")
            require(len(set(self.seeds)) == len(self.seeds), "seeds", f"has repeated seeds: {self.seeds}")
        require(self.max_concurrent_trials >= 0, "max_concurrent_trials",
                f"must be >= 0 (0: no limit); got {self.max_concurrent_trials}")
        require(bool(self.storage.strip()), "storage", "must name a folder or URI")

    def effective_groups(self) -> list[Group]:
        """The groups to expand: the listed ones, or one group 'main' when none are listed."""
        return list(self.groups) or [Group(name="main")]


def load_sweep(path: Path, overrides: Sequence[str] = ()) -> SweepConfig:
    """Read and check a sweep YAML, with ``key=value`` overrides (``resources.gpu=0``); one-line errors."""
    try:
        return from_dict(SweepConfig, apply_overrides(load_yaml(path), overrides))
    except ConfigError as error:
        message = str(error)
        raise ConfigError("", message if message.startswith(str(path)) else f"{path}: {message}") from None
