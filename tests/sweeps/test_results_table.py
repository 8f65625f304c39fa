"""Trial records and the results table, driven with the report dicts a trial sends (no Ray)."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest
import yaml

from analysis.columns import parse_metric, varying_axes
from analysis.load import load_results
from analysis.report import analyze
from analysis.study import Options
from core import results_schema as schema
from core.errors import UserError
from core.results_schema import MANIFEST
from scaling.cli import main
from scaling.sweep.expand import expand_sweep
from scaling.sweep.plan import select_trials
from scaling.sweep.recorder import TrialBook
from scaling.sweep.records import Manifest, SweepStore
from scaling.sweep.reports import classify_failure, completed_report, evaluation_report, failure_report
from scaling.sweep.spec import load_sweep
from scaling.sweep.table import rebuild_results, results_table
from scaling.train import TrainingDiverged

CONTRACT = ["sweep", "trial_id", "model", "family", "status", "failure_reason", "seed", "step", "epoch", "flops",
            "pf_days", "params_embedding", "params_non_embedding", "wall_seconds", "eval_set", "data.task", "data.dataset"]


@pytest.fixture
def trials(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "grid": {"model.num_layers": [1, 2, 3]},
                                    "config": {"model": {"name": "hstu"}}}))
    return expand_sweep(load_sweep(path), path)


@pytest.fixture
def store(tmp_path, trials):
    store = SweepStore(str(tmp_path / "runs"), "toy")
    store.write_json(MANIFEST, Manifest.of("toy", trials).to_json())
    return store


def entry(step: int, ndcg: float, loss: float = 1.0) -> dict:
    """A history entry as ``train()`` passes it to ``on_evaluation``."""
    return {"epoch": step // 10, "step": step, "train_loss": loss, "elapsed_seconds": step / 10, "flops": step * 1e12,
            "pf_days": step * 1e12 / 8.64e19, "params": {"embedding": 500, "non_embedding": 80, "total": 580},
            "eval_set": "leave-one-out-valid:0123456789ab", "valid": {"ndcg@10": ndcg, "hr@10": 2 * ndcg}}


def result(steps: int) -> dict:
    """The parts of a ``train()`` result the final report reads."""
    return {"steps": steps, "flops": steps * 1e12, "pf_days": steps * 1e12 / 8.64e19, "wall_seconds": 9.5,
            "best_epoch": 2, "params": {"embedding": 500, "non_embedding": 80}, "test": {"ndcg@10": 0.2, "hr@10": 0.4},
            "timing": {"passes": 3, "train_wall_seconds": 7.5, "train_cpu_seconds": 6.0},
            "training_sparsity": {"sparsity": 0.25, "s2": 0.4, "targets_trained_fraction": float("nan")},
            "mfu": {"train_flops_per_s": 20e12 / 7.5, "peak_flops_per_s": 1e14, "peak_source": "measured", "mfu": 0.0267}}


def run_trials(store, trials, previous=None) -> list[str]:
    """Trial 0 completes after two evaluations, trial 1 diverges after one, trial 2 fails before any."""
    lines: list[str] = []
    book = TrialBook(store, trials, previous or {}, lines.append)
    first, second, third = (t.trial_id for t in trials)
    book.started(first)
    book.reported(first, evaluation_report(entry(10, 0.1)))
    book.reported(first, {**evaluation_report(entry(20, 0.15)), "training_iteration": 2, "trial_id": "tune's own"})
    book.reported(first, completed_report(result(20)))
    book.ended(first)
    book.started(second)
    book.reported(second, evaluation_report(entry(10, 0.05)))
    book.reported(second, failure_report(TrainingDiverged("training diverged: loss became nan at step 13"), 3.0))
    book.ended(second)
    book.started(third)
    book.reported(third, failure_report(MemoryError("cannot allocate 80 GiB"), 0.5))
    book.ended(third)
    return lines


def test_one_row_per_evaluation_with_test_metrics_on_the_final_row(store, trials):
    run_trials(store, trials)
    table = rebuild_results(store)
    assert list(table.columns[: len(CONTRACT) + 1]) == CONTRACT[:2] + ["group"] + CONTRACT[2:]
    assert "model.num_layers" in table.columns and "valid/ndcg@10" in table.columns and "train/loss" in table.columns
    first = table[table.trial_id == trials[0].trial_id]
    assert first["step"].tolist() == [10, 20] and set(first["status"]) == {"completed"}
    assert first["valid/ndcg@10"].tolist() == [0.1, 0.15]
    assert math.isnan(first["test/ndcg@10"].iloc[0]) and first["test/ndcg@10"].iloc[1] == 0.2
    assert first["pf_days"].tolist() == pytest.approx((first["flops"] / 8.64e19).tolist())
    assert first["params_non_embedding"].tolist() == [80, 80] and first["model.num_layers"].tolist() == [1, 1]
    assert set(first["family"]) == {"GR"} and set(first["data.task"]) == {"retrieval"}
    totals = first[["best_epoch", "passes", "train_wall_seconds", "train_cpu_seconds", "sparsity", "s2"]]
    assert totals.iloc[0].isna().all() and totals.iloc[1].tolist() == [2, 3, 7.5, 6.0, 0.25, 0.4]
    assert first["targets_trained_fraction"].isna().all()  # SL off: NaN, stored as null
    assert first["mfu"].isna().tolist() == [True, False] and first["mfu"].iloc[1] == 0.0267
    assert first["train_flops_per_s"].iloc[1] == pytest.approx(20e12 / 7.5)


def test_failed_and_diverged_trials_are_rows_with_their_reason(store, trials):
    run_trials(store, trials)
    table = rebuild_results(store)
    diverged = table[table.trial_id == trials[1].trial_id]
    assert diverged["status"].tolist() == ["diverged"] and diverged["step"].tolist() == [10]
    assert diverged["failure_reason"].iloc[0] == "training diverged: loss became nan at step 13"
    assert diverged["test/ndcg@10"].isna().all()
    failed = table[table.trial_id == trials[2].trial_id]
    assert len(failed) == 1 and failed["status"].iloc[0] == "failed"
    assert failed["failure_reason"].iloc[0].startswith("out of memory (MemoryError): cannot allocate")
    assert pd.isna(failed["step"].iloc[0]) and failed["model.num_layers"].iloc[0] == 3


def test_table_is_written_atomically_and_rebuilds_identically(store, trials, tmp_path):
    run_trials(store, trials)
    first = rebuild_results(store)
    again = rebuild_results(store)
    pd.testing.assert_frame_equal(first, again)
    on_disk = pd.read_parquet(tmp_path / "runs" / "toy" / "results.parquet")
    pd.testing.assert_frame_equal(on_disk, first)
    assert not list((tmp_path / "runs").rglob("*.tmp"))
    assert on_disk["step"].dtype == "Int64" and on_disk["flops"].dtype == "float64"


def test_a_rerun_trial_replaces_its_rows(store, trials):
    killed = TrialBook(store, trials, {}, lambda line: None)
    killed.started(trials[0].trial_id)
    killed.reported(trials[0].trial_id, evaluation_report(entry(10, 0.1)))
    # the sweep dies here: the record says running, with one evaluation
    interrupted = rebuild_results(store)
    assert interrupted["status"].tolist() == ["running"]
    records = store.read_records()
    assert [t.trial_id for t in select_trials(trials, records, resume=True, retry_failed=False, where="x")] == \
        [t.trial_id for t in trials]
    run_trials(store, trials, previous=records)
    table = rebuild_results(store)
    assert table[table.trial_id == trials[0].trial_id]["step"].tolist() == [10, 20]
    assert store.read_records()[trials[0].trial_id]["attempt"] == 2


def test_resume_skips_finished_trials_and_retry_reruns_failed_ones(store, trials):
    run_trials(store, trials)
    records = store.read_records()
    with pytest.raises(UserError, match="pass --resume"):
        select_trials(trials, records, resume=False, retry_failed=False, where="runs/toy")
    assert select_trials(trials, records, resume=True, retry_failed=False, where="x") == []
    retried = select_trials(trials, records, resume=True, retry_failed=True, where="x")
    assert [t.trial_id for t in retried] == [trials[1].trial_id, trials[2].trial_id]


def test_records_of_trials_no_longer_in_the_sweep_are_left_out(store, trials):
    run_trials(store, trials)
    table = results_table(Manifest.of("toy", trials[:1]), store.read_records())
    assert set(table.trial_id) == {trials[0].trial_id}


def test_a_crashed_worker_is_recorded_as_failed(store, trials):
    book = TrialBook(store, trials, {}, lambda line: None)
    book.started(trials[0].trial_id)
    book.ended(trials[0].trial_id, error=("failed", "out of memory: Ray's memory monitor killed the worker"))
    assert store.read_records()[trials[0].trial_id]["status"] == "failed"


def test_progress_lines_are_concise(store, trials):
    lines = run_trials(store, trials)
    assert len(lines) == 6
    assert lines[1].startswith("completed") and "best valid/ndcg@10 0.1500" in lines[1]
    assert lines[3].startswith("diverged") and "loss became nan" in lines[3]
    clock = iter([0.0, 100.0, 100.0]).__next__
    book = TrialBook(store, trials, {}, lines.append, heartbeat_seconds=30, clock=clock)
    book.heartbeat()
    assert lines[-1] == "progress 0/3 finished"


def test_failures_are_classified():
    assert classify_failure(TrainingDiverged("training diverged: loss became inf at step 3"))[0] == "diverged"
    assert classify_failure(MemoryError())[0] == "failed"
    assert classify_failure(RuntimeError("CUDA error\nlong traceback")) == ("failed", "RuntimeError: CUDA error")


def test_results_command_prints_one_line_per_trial(store, trials, tmp_path, capsys):
    run_trials(store, trials)
    rebuild_results(store)
    assert main(["results", str(tmp_path / "runs" / "toy")]) == 0
    out = capsys.readouterr().out
    assert all(t.trial_id in out for t in trials)
    assert "best valid/ndcg@10" in out and "1 completed" in out and "loss became nan" in out
    assert main(["results", str(tmp_path / "runs" / "toy"), "--metric", "mrr"]) == 2
    assert "metric 'mrr' is not in the results table" in capsys.readouterr().err
    assert main(["results", str(tmp_path / "nowhere")]) == 2


def test_storage_may_be_a_uri(trials, tmp_path, capsys):
    store = SweepStore(f"file://{tmp_path}/remote", "toy")
    store.write_json(MANIFEST, Manifest.of("toy", trials).to_json())
    run_trials(store, trials)
    rebuild_results(store)
    assert (tmp_path / "remote" / "toy" / "results.parquet").is_file()
    assert main(["results", f"file://{tmp_path}/remote/toy"]) == 0
    assert trials[0].trial_id in capsys.readouterr().out


def test_the_analysis_reads_the_table_the_sweep_writes(store, trials, tmp_path):
    """Writer and reader share one contract: a table built from trial records passes the analysis' validation
    as it is, and the analysis runs on it end to end."""
    run_trials(store, trials)
    written = rebuild_results(store)
    assert list(written.columns[: len(schema.FIXED_COLUMNS)]) == list(schema.FIXED_COLUMNS)
    assert [c for c in written.columns if schema.is_axis_column(c)] == ["model.num_layers"]
    assert schema.sorted_metric_columns(written.columns) == list(written.columns[len(schema.FIXED_COLUMNS) + 1:])
    folder = tmp_path / "runs" / "toy"
    table = load_results(folder)  # validation: columns, kinds, statuses, tasks, one value per trial, pf_days
    pd.testing.assert_frame_equal(table, written)
    assert varying_axes(table) == ["model.num_layers"]
    assert {parse_metric(c).column for c in ("train/loss", "valid/ndcg@10", "valid/hr@10", "test/ndcg@10")} <= \
        set(table.columns)
    out = analyze(folder, tmp_path / "report", Options(bootstrap=0, per_model="none"))
    report = (out / "report.md").read_text()
    assert "3 trials (1 completed, 1 failed, 1 diverged)" in report and "loss became nan at step 13" in report


# --- what a sweep folder may hold that is not what it should ---------------------------------------


def test_a_trial_failing_before_its_first_evaluation_is_listed_with_its_reason(store, trials, tmp_path, capsys):
    """Results and analyze list a trial with zero evaluations (failed, diverged or still running) by its reason."""
    run_trials(store, trials)  # the third trial fails (out of memory) before any evaluation
    book = TrialBook(store, trials, store.read_records(), lambda line: None)
    book.started(trials[1].trial_id)  # rerun, killed before its first evaluation: running, zero evaluations
    rebuild_results(store)
    folder = tmp_path / "runs" / "toy"
    assert main(["results", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "1 failed" in out and "1 running" in out and "out of memory (MemoryError): cannot allocate 80 GiB" in out
    out_dir = analyze(folder, tmp_path / "report", Options(bootstrap=0, per_model="none", jobs=1))
    report = (out_dir / "report.md").read_text()
    assert "cannot allocate 80 GiB" in report and "before its first evaluation" in report


def test_records_that_are_not_this_trials_are_refused_in_one_line(store, trials, tmp_path):
    run_trials(store, trials)
    folder = tmp_path / "runs" / "toy" / "trials"
    first = trials[0].trial_id
    (folder / "stray.json").write_text("{}")
    with pytest.raises(UserError, match=r"stray\.json is not a trial record \(missing trial_id, .*\); delete it"):
        store.read_records()
    claimed = json.loads((folder / f"{first}.json").read_text())
    (folder / "stray.json").write_text(json.dumps(claimed))
    with pytest.raises(UserError, match=f"stray\\.json claims trial id '{first}' but is named for 'stray'"):
        store.read_records()
    forged = {**claimed, "trial_id": "main-00000000"}
    (folder / "stray.json").unlink()
    (folder / "main-00000000.json").write_text(json.dumps(forged))
    with pytest.raises(UserError, match="its config is not the one trial 'main-00000000' names"):
        store.read_records()


def test_results_on_a_foreign_parquet_is_one_line(tmp_path, capsys):
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "other.parquet")
    assert main(["results", str(tmp_path / "other.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a sweep's results table: it lacks the columns sweep, trial_id" in err


def test_a_stale_or_missing_table_is_shown_from_the_records_without_writing(store, trials, tmp_path, capsys):
    folder = tmp_path / "runs" / "toy"
    run_trials(store, trials)
    assert main(["results", str(folder)]) == 0  # no table yet: built in memory, nothing written
    captured = capsys.readouterr()
    assert "does not exist yet" in captured.err and "--resume` rewrites it" in captured.err
    assert "1 completed" in captured.out and not (folder / "results.parquet").exists()
    with pytest.raises(UserError, match="no results.parquet yet .*`scaling sweep SWEEP.yaml --resume` rebuilds it"):
        load_results(folder)
    rebuild_results(store)
    written = (folder / "results.parquet").stat().st_mtime_ns
    assert main(["results", str(folder)]) == 0 and "note:" not in capsys.readouterr().err
    time.sleep(0.01)
    TrialBook(store, trials, store.read_records(), lambda line: None).started(trials[0].trial_id)  # a rerun begins
    assert main(["results", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "is older than the trial records" in captured.err and "1 running" in captured.out
    assert (folder / "results.parquet").stat().st_mtime_ns == written


def test_temporary_files_are_removed_on_failure_and_at_the_start_of_a_run(store, tmp_path):
    folder = tmp_path / "runs" / "toy"
    (folder / "trials").mkdir(exist_ok=True)
    (folder / "results.parquet.0123abcd.tmp").write_bytes(b"")  # a kill during the table rebuild
    (folder / "trials" / "main-x.json.89abcdef.tmp").write_bytes(b"{")
    assert store.remove_temporaries() == 2 and not list(folder.rglob("*.tmp"))

    class FullDisk:
        """The store's filesystem, failing the rename as a full disk would."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def move(self, *args):
            raise OSError(28, "No space left on device")

    store.filesystem = FullDisk(store.filesystem)
    with pytest.raises(OSError, match="No space left"):
        store.write_json("sweep.json", {"name": "toy"})
    assert not list(folder.rglob("*.tmp"))


def test_storage_that_is_a_file_fails_at_dry_run(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "toy", "grid": {"model.num_layers": [1]}, "config": {"model": {"name": "hstu"}}}))
    (tmp_path / "taken").write_text("a file")
    assert main(["sweep", str(sweep), "--dry-run", "--storage", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "taken is a file, not a folder; pass --storage DIR" in err


def test_a_trial_restarted_from_its_checkpoint_neither_loses_nor_repeats_evaluations(store, trials):
    from scaling.sweep.reports import EVALUATIONS_DONE, start_report

    def numbered(step: int, ndcg: float, number: int) -> dict:
        return {**evaluation_report(entry(step, ndcg)), EVALUATIONS_DONE: number}

    book = TrialBook(store, trials, {}, lambda line: None)
    first = trials[0].trial_id
    book.started(first)
    book.reported(first, start_report(0))
    for number, step in enumerate((10, 20, 30), start=1):  # checkpointed at the second
        book.reported(first, numbered(step, 0.1, number))
    book.started(first)  # the worker died; Ray restarts the trial from the checkpoint of evaluation 2
    book.reported(first, start_report(2))
    book.reported(first, numbered(30, 0.3, 3))  # evaluation 3 again, now the one that counts
    book.reported(first, numbered(40, 0.4, 4))
    book.reported(first, completed_report(result(40)))
    book.ended(first)
    rows = rebuild_results(store)
    rows = rows[rows.trial_id == first]
    assert rows["step"].tolist() == [10, 20, 30, 40] and rows["valid/ndcg@10"].tolist() == [0.1, 0.1, 0.3, 0.4]
    assert store.read_records()[first]["attempt"] == 2
