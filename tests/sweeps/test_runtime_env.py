"""The runtime_env a sweep's driver asks Ray for: the project's packages, unless a submitted job ships them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray")

from scaling.sweep.runner import project_runtime_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_the_driver_ships_every_package_a_trial_imports():
    shipped = {Path(directory).name for directory in project_runtime_env()["py_modules"]}
    assert shipped == {"core", "scaling", "model", "kernels"}  # core too: scaling imports it on the workers


def test_a_submitted_job_keeps_its_own_runtime_env_fields():
    def under_job(runtime_env: dict) -> dict:
        return project_runtime_env(json.dumps({"runtime_env": runtime_env}))

    assert under_job({"py_modules": ["gcs://_ray_pkg_x.zip"]}) == {}  # the job shipped the project itself
    working_dir = under_job({"working_dir": "gcs://_ray_pkg_y.zip"})
    assert set(working_dir) == {"py_modules", "excludes"}  # fields the job left unset are added
    assert set(under_job({"working_dir": "gcs://y.zip", "excludes": ["*.log"]})) == {"py_modules"}
    assert project_runtime_env(json.dumps({"runtime_env": {}})) == project_runtime_env()
