"""Shared fixtures for the data tests: no network, isolated caches, and the real datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_shared_datasets() -> Path | None:
    """``$GR_SCALING_TEST_DATASETS``, else the first ``shared/datasets`` beside an ancestor of the repo."""
    if os.environ.get("GR_SCALING_TEST_DATASETS"):
        path = Path(os.environ["GR_SCALING_TEST_DATASETS"])
        return path if path.is_dir() else None
    for ancestor in REPO_ROOT.parents:
        candidate = ancestor / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return None


SHARED_DATASETS = find_shared_datasets()


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's cache and data folders out of reach (tests/conftest.py already blocks the network)."""
    monkeypatch.delenv("GR_SCALING_CACHE", raising=False)
    monkeypatch.delenv("GR_SCALING_DATA", raising=False)


@pytest.fixture
def shared_datasets() -> Path:
    if SHARED_DATASETS is None:
        pytest.skip("real datasets not found (set GR_SCALING_TEST_DATASETS or provide ../shared/datasets)")
    return SHARED_DATASETS
