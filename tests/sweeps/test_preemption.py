"""A trial whose worker is killed mid-run resumes from its last checkpoint to the rows of an uninterrupted run.

The embedded Ray session of tests/sweeps/conftest.py runs it. The sweep is one trial of six epochs, checkpointed
every two evaluations and allowed two restarts. While it runs, a thread waits for its third
evaluation (after the checkpoint of the second) and SIGKILLs the trial's worker process (its pid is
in Tune's own result.json), as preemption would; Ray restarts the trial from that checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep_fixtures import comparable, recorded_evaluations

pytest.importorskip("ray")


from scaling.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 6
KILL_AFTER = 3  # evaluations recorded when the worker is killed: one after the checkpoint of the second


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("preemption")
    path = folder / "preempted.yaml"
    path.write_text(yaml.safe_dump({
        "name": "preempted",
        "config": {
            "data": {"dataset": "synthetic-dp", "max_seq_len": 24, "cache_dir": str(folder / "cache"),
                     "synthetic_dp": {"num_items": 300, "num_categories": 10, "num_records": 800, "record_length": 32}},
            "model": {"name": "hstu", "num_layers": 2, "embedding_dim": 32, "num_heads": 2, "dropout": 0.1},
            "train": {"epochs": EPOCHS, "batch_size": 32, "num_negatives": 32, "patience": 0, "device": "cpu"},
            "eval": {"batch_size": 256},
        },
        "resources": {"cpu": 1},
        "checkpoint": {"every": 2, "max_failures": 2},
    }))
    return path






class WorkerKiller(threading.Thread):
    """SIGKILLs the trial's worker once its record holds ``after`` evaluations; remembers what it saw."""

    def __init__(self, sweep_folder: Path, after: int, timeout: float = 180) -> None:
        super().__init__(daemon=True)
        self.sweep_folder, self.after, self.timeout = sweep_folder, after, timeout
        self.killed_pid: int | None = None
        self.evaluations_at_kill: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.killed_pid is None:
            evaluations = self._recorded_evaluations()
            pid = self._worker_pid()
            if evaluations >= self.after and pid is not None:
                os.kill(pid, signal.SIGKILL)
                self.killed_pid, self.evaluations_at_kill = pid, evaluations
            time.sleep(0.05)

    def _recorded_evaluations(self) -> int:
        return recorded_evaluations(self.sweep_folder)

    def _worker_pid(self) -> int | None:
        """The pid Tune stamps on every result of the trial (its own result.json, one JSON per line)."""
        for path in (self.sweep_folder / "tune").glob("*/*/result.json"):
            lines = path.read_text().strip().splitlines()
            if lines:
                try:
                    return json.loads(lines[-1])["pid"]
                except (json.JSONDecodeError, KeyError):
                    return None
        return None


@pytest.fixture(scope="module")
def uninterrupted(cluster, sweep_file, tmp_path_factory) -> pd.DataFrame:
    storage = tmp_path_factory.mktemp("uninterrupted")
    assert main(["sweep", str(sweep_file), "--storage", str(storage)]) == 0
    return pd.read_parquet(storage / "preempted" / "results.parquet")


def test_a_killed_worker_resumes_from_its_checkpoint_to_the_uninterrupted_rows(cluster, sweep_file, uninterrupted, tmp_path):

    killer = WorkerKiller(tmp_path / "killed" / "preempted", after=KILL_AFTER)
    killer.start()
    assert main(["sweep", str(sweep_file), "--storage", str(tmp_path / "killed")]) == 0
    killer.join(timeout=5)
    assert killer.killed_pid is not None, "the worker was never killed (the trial finished first?)"
    assert KILL_AFTER <= killer.evaluations_at_kill < EPOCHS
    resumed = pd.read_parquet(tmp_path / "killed" / "preempted" / "results.parquet")

    record = next((tmp_path / "killed" / "preempted" / "trials").glob("*.json"))
    assert json.loads(record.read_text())["attempt"] == 2  # Ray restarted it once
    assert resumed["epoch"].tolist() == [float(e) for e in range(1, EPOCHS + 1)]  # none lost, none repeated
    assert not resumed.duplicated(["trial_id", "step"]).any()
    pd.testing.assert_frame_equal(comparable(resumed), comparable(uninterrupted), check_exact=True)
    print(f"\nkilled worker {killer.killed_pid} after {killer.evaluations_at_kill} evaluations; "
          f"final valid/ndcg@10 {resumed['valid/ndcg@10'].iloc[-1]:.6f} vs {uninterrupted['valid/ndcg@10'].iloc[-1]:.6f}, "
          f"test/ndcg@10 {resumed['test/ndcg@10'].iloc[-1]:.6f} vs {uninterrupted['test/ndcg@10'].iloc[-1]:.6f}")


def test_a_killed_driver_resumes_its_trial_from_the_last_checkpoint(cluster, sweep_file, uninterrupted, tmp_path):
    """``--resume`` after the driver was SIGKILLed: the trial left running continues from its checkpoint."""
    sweep_folder = tmp_path / "preempted"
    env = {**os.environ, "RAY_ADDRESS": cluster, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "scaling.cli", "sweep", str(sweep_file), "--storage", str(tmp_path)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while recorded_evaluations(sweep_folder) < KILL_AFTER and time.monotonic() < deadline:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the trial's worker it started
        driver.wait()
    record = json.loads(next((sweep_folder / "trials").glob("*.json")).read_text())
    assert record["status"] == "running" and KILL_AFTER <= len(record["evaluations"]) < EPOCHS

    assert main(["sweep", str(sweep_file), "--storage", str(tmp_path), "--resume"]) == 0
    resumed = pd.read_parquet(sweep_folder / "results.parquet")
    record = json.loads(next((sweep_folder / "trials").glob("*.json")).read_text())
    assert record["attempt"] == 2
    starts = [json.loads(line)["evaluations_done"] for path in (sweep_folder / "tune").glob(f"*/{record['trial_id']}/result.json")
              for line in path.read_text().splitlines() if '"report": "start"' in line]
    # the first run started fresh; the resumed one after a checkpoint (every second evaluation), not from step 0
    assert sorted(starts)[0] == 0 and sorted(starts)[1] in (2, 4) and len(starts) == 2
    pd.testing.assert_frame_equal(comparable(resumed), comparable(uninterrupted), check_exact=True)
