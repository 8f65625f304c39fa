"""A sweep submitted with ``ray job submit`` to a real local Ray cluster, as the README documents.

The test starts its own Ray head (``ray start --head --block``) on 127.0.0.1 in a temporary
folder, with free ports and token authentication (the default of current Ray) whose token lives in
that folder, submits a one-trial sweep whose project packages travel as the job's runtime_env
(``py_modules``; the head runs without this checkout on its PYTHONPATH), waits for the job and reads
its results table. It stops exactly the cluster it started: the head's process group, never
``ray stop``.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep_fixtures import tiny_trial_config

pytest.importorskip("ray.dashboard.modules.job.sdk", reason="needs ray[default] (pip install -e '.[cluster]')")
pytest.importorskip("aiohttp", reason="needs ray[default] (pip install -e '.[cluster]')")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "scaling", "model", "kernels")
# Every port of the head chosen free at start: other Ray sessions may share the machine.
PORT_FLAGS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
              "metrics-export-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port",
              "ray-client-server-port")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, head: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert head.poll() is None, f"the Ray head exited:\n{log.read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Ray head's dashboard did not open port {port} within {timeout} s")


class LocalHead:
    """One Ray head started by this test, its job API address and the environment its clients need."""

    def __init__(self, folder: Path) -> None:
        token = folder / "auth_token"
        token.write_text(secrets.token_hex(16))
        environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "RAY_ADDRESS")}
        self.env = {**environment, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        ports = {flag: free_port() for flag in PORT_FLAGS}
        self.address = f"http://127.0.0.1:{ports['dashboard-port']}"
        self.log = folder / "head.log"
        command = [shutil.which("ray") or "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                   "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
                   f"--temp-dir={folder}", "--disable-usage-stats", *(f"--{flag}={port}" for flag, port in ports.items())]
        with self.log.open("w") as log:
            # Its own session: stopping the head is killing this one process group.
            self.process = subprocess.Popen(command, env=self.env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for_port(ports["dashboard-port"], self.process, self.log, timeout=90)

    def stop(self) -> None:
        """Kill the head's process group (GCS, raylet, dashboard, workers) and nothing else."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def is_gone(self, timeout: float) -> bool:
        """True once no process of the head's group is left (killed children are reaped by init)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False


@pytest.fixture
def local_head() -> Iterator[LocalHead]:
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    head = LocalHead(folder)
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert head.is_gone(timeout=15), "a process of the Ray head outlived stop()"


def tiny_sweep(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "submitted",
        "config": tiny_trial_config(folder),
        "resources": {"cpu": 1},
    }))
    return path


def test_a_sweep_submitted_with_ray_job_submit_writes_its_results_table(local_head, tmp_path):
    sweep = tiny_sweep(tmp_path)
    storage = tmp_path / "storage"
    runtime_env = {"py_modules": [str(ROOT / name) for name in PACKAGES], "excludes": ["__pycache__", "*.pyc"]}
    # `ray job submit -- WORDS` quotes each word: two commands need a shell of their own.
    where_from = "import scaling; print(); print('scaling from', scaling.__file__)"
    script = (f"python -c {shlex.quote(where_from)} && "
              f"python -m scaling.cli sweep {shlex.quote(str(sweep))} --storage {shlex.quote(str(storage))}")
    submitted = subprocess.run(
        [shutil.which("ray") or "ray", "job", "submit", "--address", local_head.address,
         "--runtime-env-json", json.dumps(runtime_env), "--", "bash", "-c", script],
        env=local_head.env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-4000:]
    assert "succeeded" in output
    # The job imported the project from its runtime_env, not from this checkout.
    imported_from = next(line for line in output.splitlines() if line.startswith("scaling from"))
    assert "runtime_resources" in imported_from and str(ROOT) not in imported_from

    table = pd.read_parquet(storage / "submitted" / "results.parquet")
    assert table["status"].tolist() == ["completed", "completed"]
    assert table["epoch"].tolist() == [1.0, 2.0]
    assert table["valid/ndcg@10"].notna().all() and table["test/ndcg@10"].notna().tolist() == [False, True]
    assert (table["flops"] > 0).all() and table["flops"].is_monotonic_increasing
