"""The results-table contract rejects tables a sweep could not have written, naming the column and the fix."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_fixtures import synthetic_results

from analysis.columns import normalize_metric_name, parse_metric, validate_results, varying_axes
from analysis.errors import AnalysisError


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_results("ranking", sizes=2, evals=2, failures=False)


def test_a_sweep_table_passes_and_its_axes_are_found(table: pd.DataFrame) -> None:
    validate_results(table, "results.parquet")
    assert varying_axes(table) == ["model.num_layers"]  # train.num_negatives is constant: not an axis


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(status="done"), "column 'status' has unknown values ['done']"),
    (lambda t: t.assign(**{"data.task": "search"}), "column 'data.task' has unknown values ['search']"),
    (lambda t: t.assign(family=["GR", "DLRM"] * (len(t) // 2)), "has several values of 'family'"),
    (lambda t: t.assign(flops="many"), "column 'flops' must be numeric"),
    (lambda t: t.assign(**{"valid/ne": "0.5"}), "metric column 'valid/ne' must be numeric"),
    (lambda t: t.assign(trial_id=None), "column 'trial_id' has"),
    (lambda t: t.drop(columns=[c for c in t.columns if "/" in c]), "has no metric columns"),
])
def test_contract_violations_name_the_column(table: pd.DataFrame, change, message: str) -> None:
    with pytest.raises(AnalysisError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        validate_results(change(table.copy()), "results.parquet")


def test_metric_names() -> None:
    hr = parse_metric("valid/hr@100")
    assert (hr.split, hr.base, hr.cutoff, hr.higher_is_better, hr.label, hr.fit_label) == \
        ("valid", "hr", 100, True, "HR@100", "1 - HR@100")
    ne = parse_metric("test/ne/click")
    assert (ne.task, ne.higher_is_better, ne.label, ne.default_threshold) == ("click", False, "NE (click)", 0.001)
    assert normalize_metric_name("HR@500") == "valid/hr@500"
    assert normalize_metric_name("train/loss") == "train/loss"
    with pytest.raises(AnalysisError, match="cannot analyse metric 'valid/coverage'"):
        parse_metric("valid/coverage")
