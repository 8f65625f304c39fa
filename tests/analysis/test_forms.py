"""A fit form is declared in one place: a form added only to the registry is fitted, compared by AICc, judged,
drawn, tabled, written to fits.json and described in the report's method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fitting import Solution
from analysis.forms import FORMS, FitForm, Parameter, forms_sentence, methods_sentence
from analysis.report import analyze
from analysis.study import Options
from core import results_schema as schema

# HR@100 = a + b x + c x^2 with x = ln C: bends over, which neither a power law nor a straight line can follow exactly
TRUE = {"a": 0.95, "b": 0.13, "c": 0.005}


def _quadratic_solve(compute: np.ndarray, values: np.ndarray, weights: np.ndarray, huber_delta: float,
                     warm_start: dict | None) -> Solution:
    x = np.log(compute)
    design = np.column_stack([np.ones_like(x), x, x * x])
    root = np.sqrt(weights)
    coefficients, *_ = np.linalg.lstsq(design * root[:, None], values * root, rcond=None)
    residual = values - design @ coefficients
    return Solution(dict(zip("abc", map(float, coefficients))), float(np.sum(weights * residual**2) / np.sum(weights)),
                    {})


QUADRATIC = FitForm(
    name="quadratic in ln C (toy)",
    formula="metric = a + b·ln C + c·(ln C)²",
    quantity="metric",
    parameters=(Parameter("a"), Parameter("b"), Parameter("c")),
    solve=_quadratic_solve,
    predict=lambda p, compute: p["a"] + p["b"] * np.log(compute) + p["c"] * np.log(compute) ** 2,
    slope=lambda p, compute: (p["b"] + 2 * p["c"] * np.log(compute)) * np.log(10.0),
    right_side=lambda p, symbol: f"{p['a']:.3g} + {p['b']:.3g}·ln {symbol} + {p['c']:.3g}·(ln {symbol})²",
    method="Quadratic: least squares on (1, ln C, ln² C).",
)


@pytest.fixture
def with_quadratic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with one more entry, and nothing else changed."""
    monkeypatch.setitem(FORMS, "quadratic", QUADRATIC)


def _bending_sweep(folder: Path) -> Path:
    """Twelve GR trials, one evaluation each, on the quadratic's curve (noise 1e-5): every point is on the frontier."""
    rng = np.random.default_rng(0)
    compute = np.logspace(-6, -2, 12)  # PF-days
    x = np.log(compute)
    hr = TRUE["a"] + TRUE["b"] * x + TRUE["c"] * x * x + rng.normal(0.0, 1e-5, x.size)
    rows = [{schema.SWEEP: "toy", schema.TRIAL_ID: f"hstu-{i}", schema.MODEL: "hstu", schema.FAMILY: schema.GR_FAMILY,
             schema.STATUS: schema.COMPLETED, schema.FAILURE_REASON: None, schema.SEED: 0, schema.STEP: 100,
             schema.EPOCH: 1.0, schema.FLOPS: c * schema.FLOPS_PER_PF_DAY, schema.PF_DAYS: c,
             schema.PARAMS_EMBEDDING: 1000, schema.PARAMS_NON_EMBEDDING: 100 * (i + 1), schema.WALL_SECONDS: 1.0,
             schema.EVAL_SET: "holdout:0", schema.TASK: "retrieval", schema.DATASET: "ml-1m",
             "model.num_layers": i + 1, "valid/hr@100": value}
            for i, (c, value) in enumerate(zip(compute, hr))]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / schema.RESULTS_FILE)
    return folder


def test_a_form_added_only_to_the_registry_is_fitted_selected_and_reported(with_quadratic: None,
                                                                           tmp_path: Path) -> None:
    options = Options(metrics=("hr@100",), bootstrap=20, per_model="none", thresholds={"*": 0.001})
    out = analyze(_bending_sweep(tmp_path / "sweep"), tmp_path / "report", options)
    group, = json.loads((out / "fits.json").read_text())["groups"]
    assert list(group["fits"]) == ["saturating", "power", "loglinear", "quadratic"]
    fit = group["fits"]["quadratic"]
    assert fit["fitted"] and fit["bootstrap"]["fitted"] == 20
    assert {name: p["estimate"] for name, p in fit["params"].items()} == pytest.approx(TRUE, rel=1e-2)
    # selected by AICc over the three built-in forms, so the verdict reads its gain at the end of the compute
    assert group["primary_form"] == "quadratic"
    assert group["form_selection"].startswith("quadratic in ln C (toy): lowest AICc")
    assert all(fit["goodness"]["aicc"] < other["goodness"]["aicc"] for name, other in group["fits"].items()
               if name != "quadratic")
    end = np.log(1e-2)
    assert group["saturation"]["fitted_gain_per_decade_at_end"]["estimate"] == \
        pytest.approx((TRUE["b"] + 2 * TRUE["c"] * end) * np.log(10.0), rel=1e-2)
    report = (out / "report.md").read_text()
    assert "| quadratic in ln C (toy) ★ | HR@100 = 0.95 + 0.13·ln C + 0.005·(ln C)² |" in report  # the fits table
    assert "metric = a + b·ln C (the paper's Figure 7) and metric = a + b·ln C + c·(ln C)²" in report  # the method
    assert "Log-linear: least squares. Quadratic: least squares on (1, ln C, ln² C)." in report
    assert (out / "figures" / "scaling_ml-1m_valid-hr-100.svg").is_file()


def test_the_report_describes_exactly_the_registered_forms() -> None:
    assert forms_sentence() == ("Forms: y = E + A·C^-α and y = A·C^-α, with y the metric for NE/loss and 1 - metric "
                                "for HR/NDCG/MRR/AUC; and metric = a + b·ln C (the paper's Figure 7). C is in the "
                                "compute unit above.")
    assert methods_sentence(1e-3).count("Power laws:") == 1 and methods_sentence(1e-3).endswith("least squares.")
