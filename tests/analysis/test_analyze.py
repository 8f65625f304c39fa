"""``scaling analyze`` end to end on hand-built results tables: every contracted file, honest verdicts, one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import synthetic_results

from analysis.errors import AnalysisError
from analysis.report import analyze, fits_document
from analysis.study import Options, run_study
from scaling import cli
from scaling.commands.analyze import parse_thresholds
from core.errors import UserError


@pytest.fixture
def only_analyze(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI with just this command registered (the other subcommands live on other branches)."""
    monkeypatch.setattr(cli, "COMMANDS", {"analyze": "scaling.commands.analyze"})


def _write(table: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table.to_parquet(folder / "results.parquet")
    return folder


@pytest.fixture(scope="module")
def ranking_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A ranking sweep analysed once through the CLI: (results folder, what the command printed)."""
    results = _write(synthetic_results("ranking", sizes=4, evals=4), tmp_path_factory.mktemp("ranking") / "sweep")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(cli, "COMMANDS", {"analyze": "scaling.commands.analyze"})
        code = cli.main(["analyze", str(results), "--bootstrap", "20", "--threshold", "ne=0.001"])
    assert code == 0
    return results, printed.getvalue()


def test_ranking_sweep_produces_every_contracted_file(ranking_report: tuple[Path, str]) -> None:
    results, printed = ranking_report
    out = results / "report"
    assert f"report written to {out}/report.md" in printed
    for name in ("report.md", "report.html", "fits.json", "figures/compute.png", "figures/compute.svg",
                 "figures/scaling_synthetic-dp_valid-ne.png", "figures/scaling_synthetic-dp_valid-ne.svg",
                 "figures/curves_synthetic-dp.png", "figures/curves_synthetic-dp.svg"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    fits = json.loads((out / "fits.json").read_text())
    by_group = {(g["group_by"], g["group"]): g for g in fits["groups"] if g["metric"] == "valid/ne"}
    assert {("family", "GR"), ("family", "DLRM"), ("model", "hstu"), ("model", "dcnv2")} <= set(by_group)
    gr, dlrm = by_group[("family", "GR")], by_group[("family", "DLRM")]
    assert gr["saturation"]["verdict"] == "improving"
    assert dlrm["saturation"]["verdict"] == "saturated"
    for form in ("saturating", "power", "loglinear"):
        fit = gr["fits"][form]
        assert fit["fitted"] and set(fit["params"]) and fit["goodness"]["rmse"] is not None
        assert "extrapolation" in fit and "identified" in fit
    report = (out / "report.md").read_text()
    headline = report.split("## Headline", 1)[1].split("##", 1)[0]
    assert "GR keeps improving" in headline and "DLRM saturates:" in headline
    assert "CUDA out of memory" in report and "loss became NaN" in report  # failures with reasons
    trials = report.split("| Trial |", 1)[1].split("\n\n", 1)[0]
    assert "| MFU |" in trials and trials.count("| 25% |") == 16 and "| dlrm-nan |" in trials  # completed trials only
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "figures/compute.svg" in html


def test_retrieval_quickstart_with_few_points_says_what_it_cannot_fit(tmp_path: Path) -> None:
    # a quickstart: three sizes per model, two evaluations each, over one decade of compute
    table = synthetic_results("retrieval", "ml-1m", sizes=3, evals=2, decades=1.0, failures=False)
    table = table[table["model"].isin(["hstu", "dlrm"])]
    options = Options(bootstrap=10, metrics=("hr@100", "ndcg@10"))
    out = analyze(_write(table, tmp_path / "quick"), tmp_path / "report", options)
    fits = json.loads((out / "fits.json").read_text())
    assert fits["groups"], "the few points that exist are still analysed"
    notes = json.dumps(fits)
    assert "not identified" in notes or "not identifiable" in notes or "resampling trials cannot" in notes
    assert (out / "figures" / "scaling_ml-1m_valid-hr-100.png").is_file()
    assert "## Failures" in (out / "report.md").read_text()


def test_metric_and_threshold_options() -> None:
    table = synthetic_results("retrieval", "ml-1m", sizes=3, evals=3, failures=False)
    options = Options(metrics=("hr@100",), thresholds=parse_thresholds(["0.5"]), bootstrap=0, per_model="none")
    fits = fits_document(run_study(table, options), "memory")
    assert {g["metric"] for g in fits["groups"]} == {"valid/hr@100"}
    assert {g["group_by"] for g in fits["groups"]} == {"family"}
    assert all(g["saturation"]["threshold"] == 0.5 for g in fits["groups"])
    json.dumps(fits, allow_nan=False)  # strict JSON: NaN became null
    assert parse_thresholds(["ne=0.002", "0.01"]) == {"valid/ne": 0.002, "*": 0.01}
    with pytest.raises(UserError, match="expected GAIN or METRIC=GAIN"):
        parse_thresholds(["ne=fast"])


def test_rerun_replaces_the_report_and_refuses_foreign_folders(ranking_report: tuple[Path, str], tmp_path: Path) -> None:
    results = tmp_path / "sweep"
    shutil.copytree(ranking_report[0], results)  # a copy: the other tests read the original report
    out = results / "report"
    (out / "stale.txt").write_text("from an older run")
    options = Options(bootstrap=0, per_model="none", metrics=("ne",))
    assert analyze(results, None, options) == out
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "fits.json").read_text())["options"]["bootstrap"] == 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report")], "no staging folder left behind"
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(AnalysisError, match="not a report folder"):
        analyze(results, foreign, options)
    assert (foreign / "thesis.tex").read_text() == "precious"


def _broken(tmp_path: Path, case: str) -> Path:
    good = synthetic_results("ranking", sizes=3, evals=2, failures=False)
    if case == "missing":
        return tmp_path / "nowhere"
    if case == "foreign":
        (tmp_path / "foreign").mkdir()
        (tmp_path / "foreign" / "data.csv").write_text("a,b\n1,2\n")
        return tmp_path / "foreign"
    if case == "columns":
        return _write(good.drop(columns=["flops", "family"]), tmp_path / "columns")
    if case == "empty":
        return _write(good.head(0), tmp_path / "empty")
    if case == "all_failed":
        return _write(good.assign(status="failed", failure_reason="NCCL timeout"), tmp_path / "failed")
    if case == "pf_days":
        return _write(good.assign(pf_days=good["pf_days"] * 2), tmp_path / "pf")
    if case == "metric":
        return _write(good, tmp_path / "metric")
    if case == "legacy":
        return _write(good.drop(columns=["eval_set"]), tmp_path / "legacy")
    raise ValueError(case)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("foreign", "has no results.parquet"),
    ("columns", "lacks required columns family, flops"),
    ("empty", "has no rows"),
    ("all_failed", "every trial in"),
    ("pf_days", "pf_days must equal flops / 8.64e19"),
    ("metric", "metric 'hr@1000' is not in the results table"),
    ("legacy", "has no 'eval_set' column: it was written before evaluations recorded which events they scored"),
])
def test_user_errors_are_one_line(tmp_path: Path, only_analyze: None, capsys, case: str, message: str) -> None:
    results = _broken(tmp_path, case)
    code = cli.main(["analyze", str(results), "--bootstrap", "0", "--metric", "hr@1000"] if case == "metric"
                    else ["analyze", str(results), "--bootstrap", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1, err
    assert not (results / "report").exists() if results.exists() else True


def test_metrics_without_values_are_skipped_and_unknown_ones_refused() -> None:
    table = synthetic_results("ranking", sizes=3, evals=2, failures=False)
    table["valid/ne"] = np.nan
    study = run_study(table, Options(bootstrap=0))
    assert [m.column for m in study.metrics[("ranking", "synthetic-dp")]] == []  # the default NE has no values
    study = run_study(table, Options(bootstrap=0, metrics=("valid/ne/click",)))
    assert {g.metric.column for g in study.groups} == {"valid/ne/click"}
    with pytest.raises(AnalysisError, match="no finite values"):
        run_study(table, Options(bootstrap=0, metrics=("valid/ne",)))


def test_worker_processes_give_the_same_answer() -> None:
    table = synthetic_results("ranking", sizes=3, evals=3, failures=False)
    serial, parallel = (fits_document(run_study(table, Options(bootstrap=5, metrics=("ne",), jobs=jobs)), "memory")
                        for jobs in (1, 2))
    assert serial["groups"] == parallel["groups"] and len(serial["groups"]) == 6
