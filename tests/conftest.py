"""Fixtures for every test: no network, and a private data cache instead of the user's."""

from __future__ import annotations

import urllib.request

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any non-file:// URL a test opens: the suite must pass offline."""
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        address = url if isinstance(url, str) else url.full_url
        if not address.startswith("file://"):
            raise AssertionError(f"a test tried to reach the network: {address}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Preprocessed data goes to a per-session folder, never to ~/.cache."""
    monkeypatch.setenv("GR_SCALING_CACHE", str(tmp_path_factory.getbasetemp() / "gr-scaling-cache"))


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: on a 2-core machine shared with Ray workers or other jobs, two
    intra-op threads made small-tensor tests 10-40x slower, and results do not depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
