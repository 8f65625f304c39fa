"""IsoFLOP profiles, allocation exponents and the joint law recover what synthetic tables plant, and refuse in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.isoflop import BUDGET_AXIS, TOKENS, analyse_isoflop, fit_profile
from analysis.joint_fit import fit_joint
from core import results_schema as schema

METRIC = "valid/ne"
SEQ = "data.max_seq_len"
N = schema.PARAMS_NON_EMBEDDING
SEQ_EXPONENT, PARAMS_EXPONENT = 0.3, 0.6  # planted: s* = 2 C^0.3, N* = 0.05 C^0.6


def isoflop_table(budgets=(1e9, 3e9, 1e10, 3e10, 1e11), offsets=np.linspace(-1.5, 1.5, 7), noise=0.002,
                  seed=0, shift=0.0) -> pd.DataFrame:
    """At each budget, shapes at ln s = ln s* + offset (N moving against s); NE is quadratic in the offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        best_seq, best_params = 2.0 * budget**SEQ_EXPONENT, 0.05 * budget**PARAMS_EXPONENT
        for offset in offsets:
            offset = offset + shift
            ne = 1.0 - 0.02 * np.log10(budget) + 0.03 * offset**2 + noise * rng.standard_normal()
            rows.append({schema.TRIAL_ID: f"t{len(rows)}", schema.STATUS: schema.COMPLETED, schema.STEP: 100,
                         schema.FLOPS: budget * 1.01, BUDGET_AXIS: budget, SEQ: best_seq * np.exp(offset),
                         N: int(best_params * np.exp(-offset)), METRIC: ne})
    return pd.DataFrame(rows)


def allocation(study, axis):
    return next(a for a in study.allocations if a.axis == axis)


def test_planted_allocation_exponents_are_recovered_with_intervals() -> None:
    study = analyse_isoflop(isoflop_table(), METRIC, replicates=100)
    assert study.refusals == ()
    seq, params, tokens = allocation(study, SEQ), allocation(study, N), allocation(study, TOKENS)
    for fitted, planted in ((seq, SEQ_EXPONENT), (params, PARAMS_EXPONENT), (tokens, 1 - PARAMS_EXPONENT)):
        assert fitted.refusal is None
        assert fitted.exponent == pytest.approx(planted, abs=0.03)
        assert fitted.interval[0] <= planted <= fitted.interval[1]
        assert fitted.interval[1] - fitted.interval[0] < 0.2
    assert seq.coefficient == pytest.approx(2.0, rel=0.5)
    assert params.exponent + tokens.exponent == pytest.approx(1.0, abs=1e-6)  # D = C / 6N by construction
    profile = next(p for p in study.profiles if p.axis == SEQ and p.budget == 1e10)
    assert profile.optimum == pytest.approx(2.0 * 1e10**SEQ_EXPONENT, rel=0.1)
    assert profile.interval[0] <= profile.optimum <= profile.interval[1]


def test_a_higher_is_better_metric_is_profiled_at_its_maximum() -> None:
    x = np.array([8.0, 16, 32, 64, 128])
    auc = 0.7 - 0.01 * (np.log(x) - np.log(32)) ** 2
    _, optimum, problem = fit_profile(x, auc, higher_is_better=True)
    assert problem is None and optimum == pytest.approx(32)


def test_refuses_without_a_budget_axis() -> None:
    study = analyse_isoflop(isoflop_table().drop(columns=[BUDGET_AXIS]), METRIC)
    assert study.profiles == () and "no 'train.max_flops' axis" in study.refusals[0].reason


def test_refuses_exponents_from_two_budgets() -> None:
    study = analyse_isoflop(isoflop_table(budgets=(1e9, 1e10)), METRIC, replicates=20)
    refusal = allocation(study, SEQ).refusal
    assert allocation(study, SEQ).exponent is None and "has 2 budget(s); an exponent needs at least 3" in refusal.reason
    assert all(p.optimum is not None for p in study.profiles if p.axis == SEQ)  # each profile alone is fine


def test_refuses_an_axis_that_does_not_vary_at_equal_compute() -> None:
    table = isoflop_table()
    table["model.num_layers"] = 2
    study = analyse_isoflop(table, METRIC, replicates=20)
    profile = next(p for p in study.profiles if p.axis == "model.num_layers")
    assert profile.optimum is None and "takes one value at this budget" in profile.refusal.reason
    assert "only 0 of 5 budgets locate an optimum" in allocation(study, "model.num_layers").refusal.reason


def test_refuses_an_optimum_beyond_the_shapes_tried() -> None:
    study = analyse_isoflop(isoflop_table(offsets=np.linspace(-1.5, 1.5, 7), shift=-2.0), METRIC, replicates=20)
    profile = next(p for p in study.profiles if p.axis == SEQ)
    assert profile.optimum is None and "beyond the largest value tried" in profile.refusal.reason
    assert allocation(study, SEQ).exponent is None


def test_trials_short_of_their_budget_are_left_out_and_named() -> None:
    table = isoflop_table()
    table.loc[0, schema.FLOPS] = table.loc[0, BUDGET_AXIS] * 0.5
    study = analyse_isoflop(table, METRIC, replicates=20)
    assert any("trial t0" == r.subject and "ran out of data" in r.reason for r in study.refusals)
    assert sum(len(p.x) for p in study.profiles if p.axis == SEQ) == len(table) - 1


# --- the joint law -------------------------------------------------------------------------------

ALPHA, BETA = 0.35, 0.25


def joint_table(sizes=(1e4, 3e4, 1e5, 3e5, 1e6), noise=0.002, seed=0) -> pd.DataFrame:
    """Each trial (one size) evaluated along its training: L = 0.4 + 20 N^-alpha + 30 D^-beta."""
    rng = np.random.default_rng(seed)
    rows = []
    for trial, size in enumerate(sizes):
        for step, tokens in enumerate(np.geomspace(1e5, 1e8, 8), start=1):
            loss = 0.4 + 20 * size**-ALPHA + 30 * tokens**-BETA
            rows.append({schema.TRIAL_ID: f"t{trial}", schema.STATUS: schema.COMPLETED, schema.STEP: step,
                         schema.FLOPS: 6 * size * tokens, N: int(size),
                         METRIC: loss * np.exp(noise * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_joint_law_recovers_planted_exponents_and_the_implied_allocation() -> None:
    fit = fit_joint(joint_table(), METRIC, replicates=30)
    assert fit.refusal is None
    assert fit.params["alpha"] == pytest.approx(ALPHA, abs=0.05)
    assert fit.params["beta"] == pytest.approx(BETA, abs=0.05)
    assert fit.params["n_exponent"] == pytest.approx(BETA / (ALPHA + BETA), abs=0.05)
    low, high = fit.intervals["alpha"]
    assert low <= fit.params["alpha"] <= high


def test_joint_law_refuses_when_n_and_d_cannot_be_separated() -> None:
    two_sizes = fit_joint(joint_table(sizes=(1e4, 1e6)), METRIC, replicates=5)
    assert two_sizes.params is None and "2 distinct non-embedding sizes" in two_sizes.refusal.reason
    tied = joint_table()
    tied = tied.groupby(schema.TRIAL_ID).tail(1).copy()  # one evaluation per size, D tied to N
    tied[schema.FLOPS] = 6 * tied[N] * tied[N].astype(float) * 10
    tied = pd.concat([tied, tied.assign(**{schema.TRIAL_ID: tied[schema.TRIAL_ID] + "b"})])
    refused = fit_joint(tied, METRIC, replicates=5)
    assert refused.params is None and "move together" in refused.refusal.reason


def test_report_section_draws_the_profiles_figure_and_the_allocation_table(tmp_path) -> None:
    from analysis.isoflop_report import isoflop_blocks
    from analysis.render import Figure, Table

    table = isoflop_table().assign(**{schema.TASK: "ranking", schema.DATASET: "synthetic-industrial"})
    blocks = isoflop_blocks(table, {("ranking", "synthetic-industrial"): METRIC}, tmp_path, 20, 0, 0.95)
    figure = next(block for block in blocks if isinstance(block, Figure))
    assert (tmp_path / figure.png).is_file() and (tmp_path / figure.svg).is_file()
    allocation_rows = next(block for block in blocks if isinstance(block, Table)).rows
    assert [row[0] for row in allocation_rows][0] == "sequence length (tokens)"
    assert allocation_rows[0][-2] == f"{allocation(analyse_isoflop(table, METRIC, 20), SEQ).exponent:.3f}"
    assert isoflop_blocks(table.drop(columns=[BUDGET_AXIS]), {("ranking", "synthetic-industrial"): METRIC},
                          tmp_path, 20, 0, 0.95) == []  # not an IsoFLOP sweep: no section
