"""One embedded Ray session for every sweep test that runs trials (starting Ray costs ~15 s on two cores)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster():
    """The Ray session this test process started (or joined); its GCS address, for drivers in subprocesses."""
    ray = pytest.importorskip("ray")
    from scaling.sweep.runner import connect_ray

    started = connect_ray()
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()
