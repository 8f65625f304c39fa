"""Expanding a sweep into trials: one validated run config per (group, axis point, seed).

Every trial's run config goes through the same validation as ``scaling train``, so a bad
axis name or value stops the sweep before the first trial starts, with one line naming the
sweep file, the group, the axis and the value. A trial's id is its group plus a digest of its
full run config: the same configuration always gets the same id, which is what lets a
resumed sweep recognise the trials it has already run.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from model.catalogue import model_spec
from scaling.config import RunConfig, run_config_from_dict
from core.configtools import ConfigError, content_digest, load_yaml, set_path, to_dict
from scaling.sweep.spec import Axes, Group, Resources, SweepConfig


@dataclass(frozen=True)
class Trial:
    trial_id: str  # "<group>-<8 hex digits of the run config's digest>"
    group: str
    point: dict[str, Any]  # this trial's value of each of its group's axes (dotted key -> value)
    config: RunConfig
    resources: Resources

    @property
    def model(self) -> str:
        return self.config.model.name

    @property
    def family(self) -> str:
        return model_spec(self.config.model.name).family


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in: mappings merge key by key, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def axis_points(grid: Axes, zips: list[Axes]) -> list[dict[str, Any]]:
    """Every point of the grid crossed with every step of each zipped block (last axis varies fastest)."""
    dimensions: list[list[dict[str, Any]]] = [[{key: value} for value in values] for key, values in grid.items()]
    for block in zips:
        length = len(next(iter(block.values())))
        dimensions.append([{key: values[step] for key, values in block.items()} for step in range(length)])
    return [{k: v for part in combination for k, v in part.items()} for combination in itertools.product(*dimensions)]


def config_digest(config: RunConfig) -> str:
    """8 hex digits identifying a run config (canonical JSON, keys sorted)."""
    return content_digest(to_dict(config))


def expand_sweep(sweep: SweepConfig, sweep_file: Path) -> list[Trial]:
    """All trials of ``sweep``, each validated; raises a one-line ConfigError on the first bad one."""
    base: dict[str, Any] = {}
    if sweep.base is not None:
        try:
            base = load_yaml(sweep_file.parent / sweep.base)
        except ConfigError as error:
            raise ConfigError("", f"{sweep_file}: base: {error}") from None
    trials: list[Trial] = []
    for group in sweep.effective_groups():
        trials.extend(_expand_group(sweep, group, deep_merge(deep_merge(base, sweep.config), group.config), sweep_file))
    _check_unique(trials, sweep_file)
    return trials


def _expand_group(sweep: SweepConfig, group: Group, group_config: dict[str, Any], sweep_file: Path) -> list[Trial]:
    grid = {**sweep.budget.axes(), **sweep.grid, **group.grid}
    zips = [*sweep.zip, *group.zip]
    axes = [*sweep.grid, *group.grid, *(key for block in zips for key in block)]
    _check_axis_keys(sweep, group, axes, sweep_file)
    budgeted = copy.deepcopy(group_config)
    for key, value in sweep.budget.overrides().items():
        set_path(budgeted, key.split("."), value)
    resources = group.resources or sweep.resources
    trials = []
    for point in axis_points(grid, zips):
        for seed in sweep.seeds if sweep.seeds is not None else [None]:
            config = _trial_config(budgeted, point, seed, sweep_file, group.name)
            config = replace(config, name=f"{sweep.name}.{group.name}")
            _check_device(config, resources, sweep_file, group.name)
            trials.append(Trial(f"{group.name}-{config_digest(config)}", group.name, point, config, resources))
    return trials


def _check_axis_keys(sweep: SweepConfig, group: Group, axes: list[str], sweep_file: Path) -> None:
    """An axis is swept in one place only, and never fights the budget or the seeds list."""
    where = f"{sweep_file}: group '{group.name}'"
    repeated = sorted({key for key in axes if axes.count(key) > 1})
    if repeated:
        raise ConfigError("", f"{where}: axis '{repeated[0]}' is swept both by the sweep and by the group; keep one")
    for key in axes:
        if key in sweep.budget.overrides() or key in sweep.budget.axes():
            raise ConfigError("", f"{where}: axis '{key}' is also set by budget; remove one of the two")
        if key == "seed" and sweep.seeds is not None:
            raise ConfigError("", f"{where}: axis 'seed' conflicts with the seeds list; use one of the two")


def _trial_config(group_config: dict[str, Any], point: dict[str, Any], seed: int | None, sweep_file: Path, group: str) -> RunConfig:
    data = copy.deepcopy(group_config)
    try:
        for key, value in point.items():
            set_path(data, key.split("."), value)
        if seed is not None:
            data["seed"] = seed
        return run_config_from_dict(data)  # model-task and other cross-section checks included (RunConfig)
    except ConfigError as error:
        raise ConfigError("", f"{sweep_file}: group '{group}': {_blame(error.key, point, group_config)}: {error}") from None


def _blame(error_key: str, point: dict[str, Any], group_config: dict[str, Any]) -> str:
    """Where a config error comes from: one axis and its value, the config itself, or a combination."""
    for key, value in point.items():
        if error_key == key or error_key.startswith(f"{key}.") or key.startswith(f"{error_key}."):
            return f"axis '{key}' value {value!r}"
    try:
        run_config_from_dict(group_config)
    except ConfigError as without_axes:
        if without_axes.key == error_key:
            return "config (base, config and group config merged)"
    return "trial " + ", ".join(f"{key}={value!r}" for key, value in point.items())


def _check_device(config: RunConfig, resources: Resources, sweep_file: Path, group: str) -> None:
    if config.train.device == "cuda" and resources.gpu == 0:
        raise ConfigError("", f"{sweep_file}: group '{group}': train.device is 'cuda' but resources.gpu is 0; "
                              "give each trial a GPU (resources: {gpu: 1}) or set train.device: auto")
    if config.train.device == "cpu" and resources.gpu > 0:
        raise ConfigError("", f"{sweep_file}: group '{group}': resources.gpu is {resources.gpu:g} but train.device is "
                              "'cpu', so the GPU would sit idle; set train.device: auto or resources.gpu: 0")


def _check_unique(trials: list[Trial], sweep_file: Path) -> None:
    seen: dict[str, Trial] = {}
    for trial in trials:
        if trial.trial_id in seen:
            first = seen[trial.trial_id]
            raise ConfigError("", f"{sweep_file}: group '{trial.group}': points {first.point} and {trial.point} give the "
                                  "same run config; remove the repeated axis value")
        seen[trial.trial_id] = trial
