"""How much of a result is the seed: the spread between seeds at one configuration next to the effect of size.

A trial's *final value* is its metric at its last evaluation (on the study's one evaluation set). A
*configuration* is a model with its values of the axes that vary among that model's own trials
(sizes, sequence lengths, ...), all but the seed. For each model with repeated seeds:

- seed range: max - min of the final values across the seeds of one configuration (mean and largest
  over configurations);
- size effect: how much better the seed-mean of the configuration that used the most compute is
  than that of the one that used the least (negative: the largest is worse);
- configuration range: how much better the best configuration's seed-mean is than the worst one's.

A size effect not well above the seed range means the frontier's shape is mostly seed noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import columns as col
from analysis.trials import last_evaluations
from core import results_schema as schema


@dataclass(frozen=True)
class SeedSpread:
    model: str
    family: str
    configurations: int  # configurations with two or more seeds
    seeds: int  # most seeds at one configuration
    mean_range: float  # mean over those configurations of the final values' range across seeds (metric units)
    max_range: float
    size_effect: float  # largest-compute configuration's seed-mean minus the smallest's, as an improvement (+ better)
    configuration_range: float  # best minus worst configuration seed-mean (metric units, >= 0)

    @property
    def ratio(self) -> float:
        """|size effect| in units of the mean seed range."""
        return abs(self.size_effect) / self.mean_range if self.mean_range > 0 else float("inf")


def axes_varying_per_model(rows: pd.DataFrame, axes: list[str]) -> dict[str, list[str]]:
    """For each model, the axes that take more than one value among its own trials.

    A sweep records every axis for every trial (a DCN-v2 trial still has HSTU's num_heads at its
    default), so a configuration is told apart only by what varies among a model's own trials.
    """
    return {model: col.varying(model_rows, axes) for model, model_rows in rows.groupby(schema.MODEL, sort=False)}


def final_values(rows: pd.DataFrame, metric: col.Metric) -> pd.DataFrame:
    """One row per trial: its last evaluation with a value of ``metric``."""
    return last_evaluations(rows.dropna(subset=[metric.column]))


def seed_spreads(rows: pd.DataFrame, metric: col.Metric) -> list[SeedSpread]:
    """Per model with repeated seeds at some configuration, its seed range and its size effect."""
    finals = final_values(rows, metric)
    axes = col.varying_axes(rows)
    varying = axes_varying_per_model(finals, axes)
    spreads = []
    for model, trials in finals.groupby(schema.MODEL, sort=True):
        keys = varying.get(model, [])
        grouped = trials.groupby(keys, dropna=False, sort=True) if keys else [(None, trials)]
        stats = [(group[metric.column].mean(), group[metric.column].max() - group[metric.column].min(),
                  len(group), group[schema.PF_DAYS].mean()) for _, group in grouped]
        repeated = [(spread, size) for _, spread, size, _ in stats if size >= 2]
        if not repeated:
            continue
        means = np.array([mean for mean, _, _, _ in stats])
        compute = np.array([c for _, _, _, c in stats])
        smallest, largest = means[np.argmin(compute)], means[np.argmax(compute)]
        size_effect = largest - smallest if metric.higher_is_better else smallest - largest
        ranges = np.array([spread for spread, _ in repeated])
        spreads.append(SeedSpread(str(model), str(trials[schema.FAMILY].iloc[0]), len(repeated),
                                  max(size for _, size in repeated), float(ranges.mean()), float(ranges.max()),
                                  float(size_effect), float(means.max() - means.min())))
    return spreads
