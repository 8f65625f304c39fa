"""The preprocessed-dataset cache: SequenceDatasets stored as .npz, keyed by source content and parameters.

Layout under the cache root (``data.cache_dir``, else ``$GR_SCALING_CACHE``, else
``~/.cache/gr-scaling``)::

    datasets/<name>/           raw files downloaded for a known dataset
    sequences/<name>-<key>.npz preprocessed SequenceDatasets
    file-hashes/<hash>.json    sha256 of a source file, remembered by (path, size, mtime, inode)

An entry's key is the sha256 of a canonical JSON of everything that determines its content:
:data:`FORMAT_VERSION`, the dataset kind, the sha256 of every source file's content, the
filters, and for synthetic data its parameters and seed. Entries are written to a temporary
file and renamed into place, so a crash never leaves a half-written entry; an entry that
cannot be read back, or whose stored key differs, is reported and rebuilt.

Hashing ML-20M (~530 MB) or Amazon Books (~900 MB) takes seconds, so a file's content hash is
remembered against its (resolved path, size, mtime_ns, inode): an unchanged file is not
re-read, and any rewrite or replacement of the file changes that identity and forces a
re-hash. (A same-size in-place edit that also restores the mtime would go unnoticed; tools
that do that are rare and the cost of missing it is only a stale cache.)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from scaling.data.sequences import ContextEvents, SequenceDataset

# Bump whenever readers, filters, id assignment or ordering change what a cache entry holds.
FORMAT_VERSION = 3  # 2: actions, labels, categories and contexts are stored too; 3: exact duplicate events dropped

_HASH_CHUNK_BYTES = 1 << 22


class CacheWarning(UserWarning):
    """A cache entry was unusable (and is being rebuilt) or a check was skipped."""


def cache_root(cache_dir: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The cache root: ``cache_dir``, else ``$GR_SCALING_CACHE``, else ``~/.cache/gr-scaling``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if environ.get("GR_SCALING_CACHE"):
        return Path(environ["GR_SCALING_CACHE"]).expanduser()
    return Path("~/.cache/gr-scaling").expanduser()


def file_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of ``path``'s content, streamed; remembered in ``memo_dir`` by the file's identity."""
    identity = _file_identity(path)
    memo = memo_dir / f"{hashlib.sha256(identity['path'].encode()).hexdigest()[:32]}.json" if memo_dir else None
    if memo is not None and memo.is_file():
        try:
            stored = json.loads(memo.read_text())
            if stored.get("identity") == identity:
                return str(stored["sha256"])
        except (OSError, ValueError, KeyError):
            pass  # unreadable memo: fall through and re-hash
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    result = digest.hexdigest()
    if memo is not None:
        try:
            atomic_write_bytes(memo, json.dumps({"identity": identity, "sha256": result}).encode())
        except OSError:
            pass  # a memo that cannot be written (full or read-only cache) only costs a re-hash next time
    return result


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` plus :data:`FORMAT_VERSION`."""
    canonical = json.dumps({"format_version": FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry_path(root: Path, dataset: str, key: str) -> Path:
    """Where the entry for ``key`` lives."""
    return root / "sequences" / f"{dataset}-{key[:20]}.npz"


def load_entry(path: Path, key: str) -> SequenceDataset | None:
    """The cached dataset at ``path`` if present and intact; ``None`` (with a warning if corrupt) otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("key") != key:
                raise ValueError(f"it holds key {meta.get('key')!r}, expected {key!r}")
            dataset = _dataset_from_archive(archive, meta)
        _check_consistent(dataset)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"cache entry {path} is unreadable ({error}); rebuilding it", CacheWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return dataset


def save_entry(path: Path, dataset: SequenceDataset, key: str) -> None:
    """Write ``dataset`` to ``path`` atomically (temporary file, then rename); a cache that cannot be
    written (full disk, read-only folder) is warned about and skipped: the run goes on uncached."""
    arrays, meta = _archive_of(dataset)
    arrays["meta"] = np.array(json.dumps({"key": key, **meta}))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        with atomic_file(path) as file:
            np.savez(file, **arrays)
    except OSError as error:
        warnings.warn(f"could not write cache entry {path} ({error.strerror or error}); continuing without caching "
                      "it (free space or set data.cache_dir)", CacheWarning, stacklevel=3)


def remove_stale_temporaries(folder: Path, older_than_seconds: float = 600.0) -> int:
    """Delete temporary files of :func:`atomic_file` in ``folder`` that no writer touched for a while.

    A writer killed mid-write (a 23 MB ``.<entry>.npz.*.tmp``) would otherwise stay forever; a live
    writer keeps its file's modification time fresh, so it is never removed under it.
    """
    removed = 0
    now = time.time()
    for candidate in folder.glob(".*.tmp"):
        try:
            if now - candidate.stat().st_mtime > older_than_seconds:
                candidate.unlink()
                removed += 1
        except OSError:
            pass  # another process removed or is replacing it
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        file.write(data)


def _shared_mode() -> int:
    """The mode a plain ``open`` would give a new file (0o666 less the umask; 0o644 if unknown):
    ``mkstemp`` makes files owner-only, which breaks a cache shared by a team."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A temporary file next to ``path``, renamed onto it only if the block succeeds."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(descriptor, _shared_mode())
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


_OPTIONAL_ARRAYS = ("ratings", "action_tokens", "labels", "item_categories", "oracle_probabilities")
_SCALARS = ("num_items", "num_action_tokens", "num_categories", "fingerprint")
_CONTEXT_ARRAYS = ("tokens", "timestamps", "offsets", "token_feature")


def _archive_of(dataset: SequenceDataset) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and JSON metadata that store ``dataset`` (absent optional fields are left out)."""
    arrays = {"item_ids": dataset.item_ids, "timestamps": dataset.timestamps, "offsets": dataset.offsets}
    arrays |= {name: getattr(dataset, name) for name in _OPTIONAL_ARRAYS if getattr(dataset, name) is not None}
    meta: dict[str, Any] = {name: getattr(dataset, name) for name in _SCALARS}
    meta["task_names"] = list(dataset.task_names)
    if dataset.contexts is not None:
        contexts = dataset.contexts
        arrays |= {f"contexts.{name}": getattr(contexts, name) for name in _CONTEXT_ARRAYS if getattr(contexts, name) is not None}
        meta["contexts"] = {"num_tokens": contexts.num_tokens, "feature_names": list(contexts.feature_names)}
    return arrays, meta


def _dataset_from_archive(archive: Any, meta: dict[str, Any]) -> SequenceDataset:
    files = set(archive.files)
    contexts = None
    if "contexts" in meta:
        contexts = ContextEvents(
            **{name: archive[f"contexts.{name}"] for name in _CONTEXT_ARRAYS if f"contexts.{name}" in files},
            num_tokens=int(meta["contexts"]["num_tokens"]),
            feature_names=tuple(meta["contexts"]["feature_names"]),
        )
    return SequenceDataset(
        item_ids=archive["item_ids"],
        timestamps=archive["timestamps"],
        offsets=archive["offsets"],
        **{name: archive[name] for name in _OPTIONAL_ARRAYS if name in files},
        num_items=int(meta["num_items"]),
        num_action_tokens=int(meta.get("num_action_tokens", 0)),
        num_categories=int(meta.get("num_categories", 0)),
        task_names=tuple(meta.get("task_names", ())),
        fingerprint=meta["fingerprint"],
        contexts=contexts,
    )


def _check_consistent(dataset: SequenceDataset) -> None:
    """Raise ValueError if the arrays cannot form a valid SequenceDataset (a damaged entry)."""
    offsets = dataset.offsets
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets are not a non-decreasing CSR index starting at 0")
    if offsets[-1] != len(dataset.item_ids) or len(dataset.timestamps) != len(dataset.item_ids):
        raise ValueError("array lengths disagree with offsets")
    if dataset.ratings is not None and len(dataset.ratings) != len(dataset.item_ids):
        raise ValueError("ratings length disagrees with item_ids")
    if dataset.oracle_probabilities is not None and (
        dataset.labels is None or dataset.oracle_probabilities.shape != dataset.labels.shape
    ):
        raise ValueError("oracle_probabilities disagree with labels in shape")
    if len(dataset.item_ids) and (dataset.item_ids.min() < 1 or dataset.item_ids.max() > dataset.num_items):
        raise ValueError("item ids outside 1..num_items")
