"""Rows scored on different evaluation sets never share a frontier; seed noise is reported next to the size effect."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import columns as col
from analysis.errors import AnalysisError
from analysis.seeds import seed_spreads
from analysis.study import Options, run_study, separate_evaluation_sets
from analysis_fixtures import synthetic_results
from core import results_schema as schema


def _two_sets() -> pd.DataFrame:
    """The same sweep run on two generator settings: each setting its own evaluation set."""
    tables = []
    for coef, seed in ((0.0, 0), (0.5, 1)):
        table = synthetic_results("ranking", sizes=4, evals=4, failures=False, seed=seed)
        table["eval_set"] = f"holdout-window-9-of-10:{seed:012d}"
        table["data.synthetic_industrial.sequence_signal_coef"] = coef
        table["trial_id"] = table["trial_id"] + f"-{coef}"
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def test_rows_of_different_evaluation_sets_are_analysed_apart_and_named_by_what_differs():
    table, notes = separate_evaluation_sets(_two_sets())
    assert sorted(table[schema.DATASET].unique()) == ["synthetic-dp [synthetic_industrial.sequence_signal_coef=0.0]",
                                                   "synthetic-dp [synthetic_industrial.sequence_signal_coef=0.5]"]
    assert len(notes) == 1 and "2 different sets" in notes[0] and "never on one frontier" in notes[0]
    study = run_study(_two_sets(), Options(bootstrap=0, per_model="none"))
    for group in study.groups:  # every frontier holds rows of one evaluation set only
        trials = set(group.points.trial_id)
        assert all(t.endswith("-0.0") for t in trials) or all(t.endswith("-0.5") for t in trials)


def test_one_evaluation_set_keeps_the_dataset_name():
    table, notes = separate_evaluation_sets(synthetic_results("ranking", sizes=3, evals=3, failures=False))
    assert set(table[schema.DATASET]) == {"synthetic-dp"} and notes == ()


def test_a_trial_whose_rows_name_several_evaluation_sets_is_rejected():
    table = synthetic_results("ranking", sizes=3, evals=3, failures=False)
    table.loc[table.index[0], "eval_set"] = "holdout-window-2-of-10:000000000000"  # progressive-style drift
    with pytest.raises(AnalysisError, match="several values of 'eval_set'"):
        col.validate_results(table, "results.parquet")


def test_seed_range_and_size_effect_are_measured_per_model():
    rows = []
    finals = {(2, 1): 0.70, (2, 2): 0.72, (8, 1): 0.60, (8, 2): 0.61}  # (layers, seed) -> final NE
    for (layers, seed), value in finals.items():
        for step, offset in ((100, 0.1), (200, 0.0)):
            rows.append({"trial_id": f"hstu-{layers}-{seed}", "model": "hstu", "family": "GR", "seed": seed,
                         "step": step, "pf_days": layers * step * 1e-9, "model.num_layers": layers,
                         "model.dropout": 0.0, "valid/ne": value + offset})
    spread, = seed_spreads(pd.DataFrame(rows), col.parse_metric("valid/ne"))
    assert spread.configurations == 2 and spread.seeds == 2
    assert spread.mean_range == pytest.approx((0.02 + 0.01) / 2) and spread.max_range == pytest.approx(0.02)
    assert spread.size_effect == pytest.approx(0.71 - 0.605)  # 8 layers (the most compute) improve on 2
    assert spread.configuration_range == pytest.approx(0.105)
    assert spread.ratio == pytest.approx(0.105 / 0.015)
    worse = pd.DataFrame(rows).assign(pf_days=lambda t: 1.0 / t["model.num_layers"])  # now 2 layers use more compute
    assert seed_spreads(worse, col.parse_metric("valid/ne"))[0].size_effect == pytest.approx(-0.105)
