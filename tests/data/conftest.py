"""Shared fixtures for the data tests: no network, isolated caches, and the real datasets when present."""

from __future__ import annotations

import os
import urllib.request
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
def no_network_and_isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any non-file:// URL opened by a test, and keep the user's cache and data folders out of reach."""
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        address = url if isinstance(url, str) else url.full_url
        if not address.startswith("file://"):
            raise AssertionError(f"a test tried to reach the network: {address}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    monkeypatch.delenv("GR_SCALING_CACHE", raising=False)
    monkeypatch.delenv("GR_SCALING_DATA", raising=False)


@pytest.fixture
def shared_datasets() -> Path:
    if SHARED_DATASETS is None:
        pytest.skip("real datasets not found (set GR_SCALING_TEST_DATASETS or provide ../shared/datasets)")
    return SHARED_DATASETS
