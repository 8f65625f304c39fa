"""The sweep storage lock: a live driver refuses a second one, a dead driver's lock is taken over (no Ray)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import UserError
from scaling.sweep.lock import LOCK_FILE, LockOwner, SweepLock, is_stale
from scaling.sweep.records import SweepStore

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from scaling.sweep.lock import SweepLock
from scaling.sweep.records import SweepStore
with SweepLock(SweepStore(sys.argv[1], "toy"), heartbeat_seconds=0.2).held():
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A driver process holding the lock of tmp_path/toy; yields the process."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_live_driver_refuses_a_second_one_then_its_lock_is_taken_over_once_it_is_killed(tmp_path, holder):
    store = SweepStore(str(tmp_path), "toy")
    with pytest.raises(UserError) as refused:
        with SweepLock(store).held():
            pass
    message = str(refused.value)
    assert "\n" not in message and "is in use by" in message and f"pid {holder.pid}" in message
    assert socket.gethostname() in message and "scaling results/analyze work meanwhile" in message
    owner = json.loads((tmp_path / "toy" / LOCK_FILE).read_text())
    time.sleep(0.5)
    assert json.loads((tmp_path / "toy" / LOCK_FILE).read_text())["heartbeat"] > owner["heartbeat"]  # it beats

    os.kill(holder.pid, signal.SIGKILL)  # no cleanup at all: the lock file stays, naming a dead pid
    holder.wait()
    assert (tmp_path / "toy" / LOCK_FILE).is_file()
    lines: list[str] = []
    with SweepLock(store).held(lines.append):
        assert json.loads((tmp_path / "toy" / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert lines == [lines[0]] and lines[0].startswith("took over the stale lock of") and str(holder.pid) in lines[0]
    assert not (tmp_path / "toy").exists()  # released: the lock file and the then empty folder are gone


def test_a_lock_from_another_host_counts_while_its_heartbeat_is_fresh(tmp_path):
    store = SweepStore(str(tmp_path), "toy")
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "trials").mkdir()
    other = {"user": "ana", "host": "elsewhere", "pid": 1, "started": time.time() - 60, "token": "x"}
    (tmp_path / "toy" / LOCK_FILE).write_text(json.dumps({**other, "heartbeat": time.time() - 5}))
    with pytest.raises(UserError, match="in use by ana@elsewhere pid 1"):
        with SweepLock(store, stale_after=120).held():
            pass
    (tmp_path / "toy" / LOCK_FILE).write_text(json.dumps({**other, "heartbeat": time.time() - 500}))
    with SweepLock(store, stale_after=120).held():
        pass
    assert (tmp_path / "toy" / "trials").is_dir() and not (tmp_path / "toy" / LOCK_FILE).exists()


def test_object_storage_locks_by_heartbeat_and_pid(tmp_path):
    store = SweepStore(str(tmp_path), "toy")
    lock = SweepLock(store)
    lock.local = False  # the read / write / read-back protocol of s3:// and other URIs
    with lock.held():
        second = SweepLock(store)
        second.local = False
        with pytest.raises(UserError, match=f"pid {os.getpid()}"):
            with second.held():
                pass
    assert not (tmp_path / "toy" / LOCK_FILE).exists()
    now = time.time()
    dead = LockOwner("ana", socket.gethostname(), 2**22 + 12345, now, now, "t")
    assert is_stale(dead, now, 120, socket.gethostname(), lambda pid: False)
    assert not is_stale(dead, now, 120, socket.gethostname(), lambda pid: True)
    assert is_stale(LockOwner("ana", "elsewhere", 1, now, now - 121, "t"), now, 120, "here", lambda pid: True)


def test_a_full_storage_during_a_sweep_is_one_line(tmp_path, monkeypatch):
    import errno

    import yaml

    from scaling.sweep import runner
    from scaling.sweep.plan import plan_sweep

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "toy", "grid": {"model.num_layers": [1]}, "config": {"model": {"name": "hstu"}}}))
    plan = plan_sweep(sweep, str(tmp_path / "runs"), resume=False, retry_failed=False)

    def full(plan, log):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("Tune callback failed") from error  # as Ray Tune wraps it

    monkeypatch.setattr(runner, "run_sweep", full)
    with pytest.raises(UserError, match=r"runs/toy is full \(No space left on device\); free space and continue with "
                                        r"--resume"):
        runner.run_sweep_exclusively(plan, resume=False, retry_failed=False, log=lambda line: None)
    assert not (tmp_path / "runs" / "toy" / LOCK_FILE).exists()  # released on the way out
