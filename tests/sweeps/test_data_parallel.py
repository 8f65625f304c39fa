"""Data-parallel trials: 2 workers (gloo, CPU) train the same run as 1 worker at the same global batch.

Two routes: the DDP training path itself on two processes of ``torch.multiprocessing`` (fast), and a
sweep with ``resources.workers: 2`` (a Ray Train TorchTrainer inside the Tune trial) against the same
sweep with one worker. FLOPs and PF-days match exactly: both count the global batch. Metrics match
to TOLERANCE, not bit for bit: a worker's loss is the mean over its share, weighted, and DDP sums the
shares' gradients, so float32 sums run in another order (a few ulps per step, compounded by AdamW over
the run's steps); dropout is 0 and every random stream (init, shuffle, negatives) is seeded alike.
A worker killed mid-trial is restarted with its group by Ray Train from the last checkpoint, to the
rows of an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from sweep_fixtures import comparable, recorded_evaluations

from run_fixtures import TINY_RUN
from scaling.config import load_run_config
from scaling.distributed import DataParallel, _balanced_bounds
from scaling.train import train

TOLERANCE = 1e-4  # relative, on every metric and loss; measured differences are ~1e-7 (float32 sums reordered)
TINY = [*TINY_RUN, "train.epochs=2", "train.device=cpu"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, overrides: list[str], results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        result = train(load_run_config(None, overrides), progress=False,
                       parallel=DataParallel.from_process_group(torch.device("cpu")))
        results.put((rank, result))
    finally:
        dist.destroy_process_group()


def train_on_two_processes(overrides: list[str]) -> dict[int, dict]:
    context = mp.get_context("spawn")
    results = context.Queue()
    port = _free_port()
    workers = [context.Process(target=_worker, args=(rank, 2, port, overrides, results)) for rank in range(2)]
    for worker in workers:
        worker.start()
    collected = dict(results.get(timeout=240) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert all(worker.exitcode == 0 for worker in workers)
    return collected


def assert_close(one: dict[str, float], two: dict[str, float]) -> None:
    assert one.keys() == two.keys()
    for name in one:
        assert math.isclose(one[name], two[name], rel_tol=TOLERANCE, abs_tol=1e-6), (name, one[name], two[name])


@pytest.mark.parametrize("model", ["hstu", "sasrec"])
def test_two_gloo_workers_train_the_one_worker_run(model):
    overrides = [*TINY, f"model.name={model}"]
    torch.set_num_threads(1)
    one = train(load_run_config(None, overrides), progress=False)
    two = train_on_two_processes(overrides)
    assert two[0]["workers"] == 2 and one["workers"] == 1
    # every worker holds the same record: evaluations broadcast from rank 0, losses all-reduced
    assert [(e["valid"], e["train_loss"]) for e in two[0]["history"]] == [(e["valid"], e["train_loss"]) for e in two[1]["history"]]
    assert two[0]["test"] == two[1]["test"]
    for result in two.values():
        assert (result["steps"], result["flops"], result["pf_days"]) == (one["steps"], one["flops"], one["pf_days"])
        assert_close(one["test"], result["test"])
        assert_close(one["valid"], result["valid"])
        for mine, theirs in zip(one["history"], result["history"], strict=True):
            assert (mine["step"], mine["flops"]) == (theirs["step"], theirs["flops"])
            assert_close({"loss": mine["train_loss"], **mine["valid"]}, {"loss": theirs["train_loss"], **theirs["valid"]})


def test_a_split_leaving_a_worker_without_targets_trains_the_batch_whole():
    assert _balanced_bounds(torch.tensor([3, 1, 2, 2]).numpy(), 2) == [0, 2, 4]
    assert _balanced_bounds(torch.tensor([0, 5]).numpy(), 2) is None  # one sequence holds every target
    assert _balanced_bounds(torch.tensor([4]).numpy(), 2) is None  # fewer sequences than workers


ray = pytest.importorskip("ray")
from scaling.cli import main  # noqa: E402


def _sweep_file(folder: Path, workers: int) -> Path:
    path = folder / f"workers{workers}.yaml"
    config: dict = {"data": {}, "model": {}, "train": {}, "eval": {}}
    for override in TINY:
        key, value = override.split("=")
        section, *rest = key.split(".")
        target = config[section]
        for part in rest[:-1]:
            target = target.setdefault(part, {})
        target[rest[-1]] = yaml.safe_load(value)
    config["data"]["cache_dir"] = str(folder / "cache")
    path.write_text(yaml.safe_dump({"name": "data-parallel", "config": config,
                                    "resources": {"cpu": 1, "workers": workers}}))
    return path


def test_a_two_worker_sweep_trial_reports_the_one_worker_rows(cluster, tmp_path):
    tables = {}
    for workers in (1, 2):
        storage = tmp_path / f"workers{workers}"
        assert main(["sweep", str(_sweep_file(tmp_path, workers)), "--storage", str(storage)]) == 0
        tables[workers] = pd.read_parquet(storage / "data-parallel" / "results.parquet")
    one, two = tables[1], tables[2]
    assert len(one) == len(two) == 2 and (two["status"] == "completed").all()
    assert one["trial_id"].tolist() == two["trial_id"].tolist()  # workers are resources, not part of the trial
    for column in ("step", "flops", "pf_days", "epoch"):
        assert one[column].tolist() == two[column].tolist(), column
    metrics = [c for c in one.columns if c.startswith(("valid/", "test/", "train/loss"))]
    assert metrics
    for column in metrics:
        for mine, theirs in zip(one[column], two[column]):
            assert (pd.isna(mine) and pd.isna(theirs)) or math.isclose(mine, theirs, rel_tol=TOLERANCE, abs_tol=1e-6), column
    print("\n" + pd.DataFrame({"workers=1": one.iloc[-1], "workers=2": two.iloc[-1]}).loc[
        ["step", "flops", "pf_days", "train/loss", "valid/ndcg@10", "valid/hr@10", "test/ndcg@10", "test/hr@10",
         "test/log_pplx", "train_wall_seconds", "wall_seconds"]].astype(float).to_string(float_format="{:.9g}".format))


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [root]
    while frontier:
        here = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == here]
        found += children
        frontier += children
    return found


def _train_workers_of_this_session() -> list[int]:
    """Ray Train worker processes under this test process (the embedded Ray it started), never others."""
    workers = []
    for pid in _descendants(os.getpid()):
        try:
            if b"RayTrainWorker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
        except OSError:
            pass
    return workers




def test_a_killed_train_worker_restarts_its_group_from_the_checkpoint_to_the_same_rows(cluster, tmp_path):
    """SIGKILL one of a 2-worker trial's workers after its third evaluation (checkpoints every second):
    Ray Train restarts the group from the checkpoint and the rows are those of an uninterrupted run."""
    path = _sweep_file(tmp_path, 2)
    body = yaml.safe_load(path.read_text())
    body["config"]["train"]["epochs"] = 5
    body["checkpoint"] = {"every": 2, "max_failures": 1}
    path.write_text(yaml.safe_dump(body))
    assert main(["sweep", str(path), "--storage", str(tmp_path / "clean")]) == 0
    killed: list[int] = []

    def kill_after_three() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            workers = _train_workers_of_this_session()
            if recorded_evaluations(tmp_path / "killed" / "data-parallel") >= 3 and workers:
                os.kill(workers[-1], signal.SIGKILL)
                killed.append(workers[-1])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_three, daemon=True)
    killer.start()
    assert main(["sweep", str(path), "--storage", str(tmp_path / "killed")]) == 0
    killer.join(timeout=5)
    assert killed, "no worker was killed (the trial finished first?)"
    clean = pd.read_parquet(tmp_path / "clean" / "data-parallel" / "results.parquet")
    resumed = pd.read_parquet(tmp_path / "killed" / "data-parallel" / "results.parquet")
    assert resumed["epoch"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # none lost, none repeated
    pd.testing.assert_frame_equal(comparable(resumed), comparable(clean), check_exact=True)
