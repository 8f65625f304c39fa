"""The one entry point from a DataConfig to a SequenceDataset: find or fetch, read, build, cache.

:func:`load_dataset` resolves where the raw files are (``data.path``, else
``$GR_SCALING_DATA/<dataset>``, else ``<cache root>/datasets/<dataset>``, downloading a
missing known dataset when ``data.download`` allows), then returns the cached
SequenceDataset for those exact file contents and preprocessing parameters, or reads,
builds and caches it. Nothing ever falls back to other data: every failure is a
:class:`DataError` naming the file (and line) or the file to provide.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from scaling.config import DataConfig
from scaling.data import download
from scaling.data.actions import with_rating_actions
from scaling.data.build import build_sequences
from scaling.data.event_logs import read_kuairand, read_yambda, with_logged_actions
from scaling.data.cache import FORMAT_VERSION, cache_key, cache_root, entry_path, file_sha256, load_entry, save_entry
from scaling.data.readers import (
    RawInteractions,
    read_amazon_rank_pair,
    read_amazon_ratings_csv,
    read_interaction_table,
    read_movielens_1m,
    read_movielens_20m,
    read_movielens_100k,
)
from scaling.data.sequences import SequenceDataset
from scaling.data.synthetic_dp import SYNTHETIC_CLOCK, generate_dirichlet_process
from scaling.data.synthetic_industrial import generate_synthetic_industrial
from core.errors import DataError

# dataset name -> reader taking the resolved source files in KnownDataset.files order
_READERS: Mapping[str, Callable[..., RawInteractions]] = MappingProxyType({
    "ml-1m": read_movielens_1m,
    "ml-20m": read_movielens_20m,
    "ml-100k": read_movielens_100k,
    "amazon-beauty": read_amazon_rank_pair,
    "amazon-books": read_amazon_ratings_csv,
    "csv": read_interaction_table,
    "yambda": read_yambda,
    "kuairand": read_kuairand,
})

_ITEM_RANK_SUFFIX = "_item_org_rank.txt"
_TIME_RANK_SUFFIX = "_time_org_rank.txt"


def load_dataset(config: DataConfig) -> SequenceDataset:
    """The preprocessed dataset ``config`` describes (``config.seed`` matters only for synthetic data).

    Explicit ratings (MovieLens) become action tokens and the ``like`` / ``five_star`` tasks;
    logged multi-action events (Yambda, KuaiRand) become multi-hot action tokens and one task each.
    """
    return with_rating_actions(with_logged_actions(_load_sequences(config, config.seed), config.dataset))


def _load_sequences(config: DataConfig, seed: int) -> SequenceDataset:
    root = cache_root(config.cache_dir)
    if config.dataset == "synthetic-dp":
        return _load_synthetic(config, seed, root)
    if config.dataset == "synthetic-industrial":
        return _load_synthetic_industrial(config, seed, root)
    sources = resolve_sources(config, root)
    hashes = [_source_sha256(path, root) for path in sources]
    parts = {"dataset": config.dataset, "sources_sha256": hashes, "filters": _filters(config)}
    key = cache_key(parts)
    path = entry_path(root, config.dataset, key)
    cached = load_entry(path, key)
    if cached is not None:
        return cached
    raw = _READERS[config.dataset](*sources)
    dataset = _build(raw, config)
    fingerprint = {
        "dataset": config.dataset,
        "sources": {source.name: digest for source, digest in zip(sources, hashes)},
        "timestamps": "unix seconds",
        **_common_fingerprint(key),
        **dataset.fingerprint,
    }
    return _store(dataclasses.replace(dataset, fingerprint=fingerprint), path, key)


def _source_sha256(path: Path, root: Path) -> str:
    """The content hash of a source file; an unreadable file is a one-line DataError, not a traceback."""
    try:
        return file_sha256(path, root / "file-hashes")
    except PermissionError:
        raise DataError(f"{path}: cannot be read (permission denied); check the file's permissions") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def resolve_sources(config: DataConfig, root: Path, environ: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """The raw files to read for ``config``, downloading a missing known dataset if allowed."""
    if config.path is not None and "://" in config.path:
        raise DataError(f"data.path {config.path!r}: URLs are not read directly; download the file and give its path")
    if config.dataset == "csv":
        return (_existing_file(Path(config.path)),)  # DataConfig requires a path for 'csv'
    known = download.KNOWN_DATASETS[config.dataset]
    if config.path is not None:
        return _sources_at(known, Path(config.path))
    directory = _default_directory(config.dataset, root, environ)
    found = download.locate_files(known, directory)
    if found is not None:
        return found
    if not config.download:
        raise DataError(download.missing_dataset_message(known, directory))
    return download.download_dataset(known, directory)


def _default_directory(dataset: str, root: Path, environ: Mapping[str, str]) -> Path:
    if environ.get("GR_SCALING_DATA"):
        return Path(environ["GR_SCALING_DATA"]).expanduser() / dataset
    return root / "datasets" / dataset


def _sources_at(known: download.KnownDataset, path: Path) -> tuple[Path, ...]:
    """Files for ``known`` at a user-given ``data.path`` (a folder, or the file itself)."""
    if path.is_dir():
        found = download.locate_files(known, path)
        if found is None:
            raise DataError(f"{known.name}: {path}/ has no {' and '.join(known.files)} (data.path)")
        return found
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (data.path)")
    if known.name == "amazon-beauty":
        return _rank_pair(path)
    return (path,)


def _rank_pair(path: Path) -> tuple[Path, Path]:
    """(item file, time file) from either file of an ``<Name>_item/time_org_rank.txt`` pair."""
    name = path.name
    if name.endswith(_ITEM_RANK_SUFFIX):
        pair = (path, path.with_name(name[: -len(_ITEM_RANK_SUFFIX)] + _TIME_RANK_SUFFIX))
    elif name.endswith(_TIME_RANK_SUFFIX):
        pair = (path.with_name(name[: -len(_TIME_RANK_SUFFIX)] + _ITEM_RANK_SUFFIX), path)
    else:
        raise DataError(
            f"{path}: amazon-beauty reads a '<Name>{_ITEM_RANK_SUFFIX}' / '<Name>{_TIME_RANK_SUFFIX}' pair "
            "(data.path: either file, or their folder)"
        )
    for member in pair:
        _existing_file(member)
    return pair


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: no such file" + (" (it is a folder; give the file)" if path.is_dir() else ""))
    return path


def _load_synthetic(config: DataConfig, seed: int, root: Path) -> SequenceDataset:
    synthetic = dataclasses.asdict(config.synthetic_dp)
    key = cache_key({"dataset": "synthetic-dp", "synthetic": synthetic, "seed": seed, "filters": _filters(config)})
    path = entry_path(root, "synthetic-dp", key)
    cached = load_entry(path, key)
    if cached is not None:
        return cached
    stream = generate_dirichlet_process(config.synthetic_dp, seed)
    dataset = _build(stream.to_interactions(), config)
    fingerprint = {
        "dataset": "synthetic-dp",
        "synthetic": synthetic,
        "seed": seed,
        "users": "records in stream order",
        "timestamps": SYNTHETIC_CLOCK,
        **_common_fingerprint(key),
        **dataset.fingerprint,
    }
    return _store(dataclasses.replace(dataset, fingerprint=fingerprint), path, key)


def _load_synthetic_industrial(config: DataConfig, seed: int, root: Path) -> SequenceDataset:
    synthetic = dataclasses.asdict(config.synthetic_industrial)
    key = cache_key({"dataset": "synthetic-industrial", "synthetic": synthetic, "seed": seed})
    path = entry_path(root, "synthetic-industrial", key)
    cached = load_entry(path, key)
    if cached is not None:
        return cached
    dataset = generate_synthetic_industrial(config.synthetic_industrial, seed)
    fingerprint = {"dataset": "synthetic-industrial", **dataset.fingerprint, **_common_fingerprint(key)}
    return _store(dataclasses.replace(dataset, fingerprint=fingerprint), path, key)


def _build(raw: RawInteractions, config: DataConfig) -> SequenceDataset:
    return build_sequences(raw, config.min_item_interactions, config.min_user_interactions, config.k_core,
                           config.duplicate_events)


def _filters(config: DataConfig) -> dict[str, Any]:
    return {
        "min_item_interactions": config.min_item_interactions,
        "min_user_interactions": config.min_user_interactions,
        "k_core": config.k_core,
        "duplicate_events": config.duplicate_events,
    }


def _common_fingerprint(key: str) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "cache_key": key}


def _store(dataset: SequenceDataset, path: Path, key: str) -> SequenceDataset:
    save_entry(path, dataset, key)
    return dataset
