"""Run the fits with single-threaded OpenBLAS, restoring the previous thread counts afterwards.

The fits are thousands of tiny L-BFGS-B problems (3 parameters, tens of points). SciPy's L-BFGS-B
calls BLAS on vectors of that size, and a multi-threaded OpenBLAS wakes its threads for each call:
on a busy 2-core machine that made each fit 10x slower in CPU time (measured: 0.11 s vs 1.0-1.4 s).
Environment variables such as OPENBLAS_NUM_THREADS only work before numpy is imported, so this sets
the count through OpenBLAS's own ``*openblas_set_num_threads*`` entry points on the libraries already
loaded (found in /proc/self/maps). Elsewhere (no /proc, another BLAS) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SUFFIXES = ("", "64_")
_PREFIXES = ("openblas", "scipy_openblas")


def _loaded_openblas() -> list[tuple[ctypes.CDLL, str]]:
    """(library, symbol prefix) for each OpenBLAS loaded in this process."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    found = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                if hasattr(library, f"{prefix}_get_num_threads{suffix}"):
                    found.append((library, f"{prefix}_%s_num_threads{suffix}"))
    return found


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block, every loaded OpenBLAS uses one thread."""
    libraries = _loaded_openblas()
    previous = [getattr(library, pattern % "get")() for library, pattern in libraries]
    for library, pattern in libraries:
        getattr(library, pattern % "set")(1)
    try:
        yield
    finally:
        for (library, pattern), count in zip(libraries, previous):
            getattr(library, pattern % "set")(count)
