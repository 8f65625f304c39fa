"""load_dataset end to end: where sources are found, the cache (hit, miss, invalidation, corruption), bad input."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scaling.config import DataConfig, SyntheticDPConfig
from scaling.data import cache as cache_module
from scaling.data import loading
from scaling.data.cache import CacheWarning, file_sha256
from scaling.data.loading import load_dataset, resolve_sources
from core.errors import DataError

U_DATA = "1\t10\t5\t100\n1\t11\t4\t100\n1\t12\t3\t99\n2\t10\t1\t50\n2\t12\t2\t60\n2\t13\t2\t70\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


def config(tmp_path: Path, **overrides) -> DataConfig:
    values = {"dataset": "ml-100k", "cache_dir": str(tmp_path / "cache"), "download": False, **overrides}
    return DataConfig(**values)


def entries(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cache" / "sequences"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_reads_builds_and_fingerprints(tmp_path: Path) -> None:
    source = write(tmp_path / "raw" / "u.data", U_DATA)
    dataset = load_dataset(config(tmp_path, path=str(source.parent)))
    assert dataset.num_users == 2 and dataset.num_items == 4
    assert dataset.item_ids.tolist() == [3, 1, 2, 1, 3, 4]  # user 1: t=99 then the tie 10, 11 in file order
    assert dataset.ratings.tolist() == [3, 5, 4, 1, 2, 2]
    fingerprint = dataset.fingerprint
    assert fingerprint["sources"] == {"u.data": file_sha256(source)}
    assert fingerprint["counts"]["num_interactions"] == 6
    assert fingerprint["filters"]["min_user_interactions"] == 3
    assert fingerprint["dataset"] == "ml-100k"


def test_second_load_is_a_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "raw" / "u.data", U_DATA)
    first = load_dataset(config(tmp_path, path=str(source)))
    assert len(entries(tmp_path)) == 1

    def must_not_read(*args, **kwargs):
        raise AssertionError("the reader ran on a cache hit")

    monkeypatch.setattr(loading, "_READERS", {**loading._READERS, "ml-100k": must_not_read})
    second = load_dataset(config(tmp_path, path=str(source), seed=123))  # the seed does not matter for real data
    assert np.array_equal(first.item_ids, second.item_ids)
    assert np.array_equal(first.offsets, second.offsets)
    assert second.fingerprint == first.fingerprint


def test_changed_content_or_parameters_miss_the_cache(tmp_path: Path) -> None:
    source = write(tmp_path / "raw" / "u.data", U_DATA)
    load_dataset(config(tmp_path, path=str(source)))
    write(source, U_DATA + "2\t14\t1\t80\n")
    changed = load_dataset(config(tmp_path, path=str(source)))
    assert changed.num_interactions == 7
    filtered = load_dataset(config(tmp_path, path=str(source), min_user_interactions=4))
    assert filtered.num_users == 1  # user 2, with 4 interactions
    assert len(entries(tmp_path)) == 3


def test_corrupt_entry_is_reported_and_rebuilt(tmp_path: Path) -> None:
    source = write(tmp_path / "raw" / "u.data", U_DATA)
    first = load_dataset(config(tmp_path, path=str(source)))
    (entry,) = entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.warns(CacheWarning, match="unreadable.*rebuilding"):
        rebuilt = load_dataset(config(tmp_path, path=str(source)))
    assert np.array_equal(rebuilt.item_ids, first.item_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(config(tmp_path, path=str(source)))  # intact again


def test_bad_input_leaves_no_cache_entry(tmp_path: Path) -> None:
    source = write(tmp_path / "raw" / "u.data", U_DATA + "3\t10\t4\n")
    with pytest.raises(DataError, match=r"u\.data:7: expected 4 fields"):
        load_dataset(config(tmp_path, path=str(source)))
    assert entries(tmp_path) == []
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]


def test_content_hash_is_remembered_by_file_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write(tmp_path / "big.csv", "x" * 1000)
    memo = tmp_path / "memo"
    digest = file_sha256(source, memo)
    opened: list[str] = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    assert file_sha256(source, memo) == digest
    assert str(source) not in opened  # unchanged file: not re-read
    monkeypatch.undo()
    write(source, "y" * 1000)  # same size, new content and mtime
    os.utime(source, ns=(1, 1))
    assert file_sha256(source, memo) != digest


def test_synthetic_is_cached_by_parameters_and_seed(tmp_path: Path) -> None:
    small = SyntheticDPConfig(num_items=300, num_categories=10, num_records=200, record_length=16)
    data = config(tmp_path, dataset="synthetic-dp", synthetic_dp=small, seed=1)
    first = load_dataset(data)
    assert first.num_users == 200 and first.num_interactions == 200 * 16
    assert first.fingerprint["seed"] == 1 and "synthetic clock" in first.fingerprint["timestamps"]
    assert np.array_equal(load_dataset(data).item_ids, first.item_ids)
    assert not np.array_equal(load_dataset(replace(data, seed=2)).item_ids, first.item_ids)
    assert len(entries(tmp_path)) == 2
    # dense ids keep the release order of the raw ids: the first record only uses early ids
    assert first.item_ids[:16].max() <= first.item_ids.max()


def test_source_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    in_cache = write(root / "datasets" / "ml-100k" / "u.data", U_DATA)
    assert resolve_sources(config(tmp_path), root, environ={}) == (in_cache,)
    in_env = write(tmp_path / "env" / "ml-100k" / "u.data", U_DATA)
    assert resolve_sources(config(tmp_path), root, environ={"GR_SCALING_DATA": str(tmp_path / "env")}) == (in_env,)
    explicit = write(tmp_path / "mine" / "u.data", U_DATA)
    assert resolve_sources(config(tmp_path, path=str(explicit.parent)), root, environ={}) == (explicit,)


def test_a_manually_unzipped_archive_folder_is_found(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    nested = write(root / "datasets" / "ml-1m" / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    assert resolve_sources(config(tmp_path, dataset="ml-1m"), root, environ={}) == (nested,)


def test_offline_message_says_which_file_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(config(tmp_path, dataset="ml-1m"))
    folder = tmp_path / "cache" / "datasets" / "ml-1m"
    assert str(caught.value) == (
        f"ml-1m not found: put ratings.dat in {folder}/ (download https://files.grouplens.org/datasets/movielens/"
        "ml-1m.zip and unzip it there), or set data.path"
    )


def test_offline_download_attempt_fails_with_the_same_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as caught:
        load_dataset(config(tmp_path, dataset="amazon-books", download=True))
    message = str(caught.value)
    assert message.startswith("amazon-books not found: put ratings_Books.csv in ")
    assert message.endswith("or set data.path (download failed: [Errno -3] Temporary failure in name resolution)")
    assert "\n" not in message
    assert not list((tmp_path / "cache" / "datasets" / "amazon-books").iterdir())


def test_wrong_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: no such file or folder \(data\.path\)"):
        load_dataset(config(tmp_path, path=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"ml-100k: .*empty/ has no u\.data \(data\.path\)"):
        load_dataset(config(tmp_path, path=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="URLs are not read directly"):
        load_dataset(config(tmp_path, path="https://example.org/u.data"))
    with pytest.raises(DataError, match=r"amazon-beauty reads a '<Name>_item_org_rank\.txt'"):
        load_dataset(config(tmp_path, dataset="amazon-beauty", path=str(write(tmp_path / "b.txt", "1 2\n"))))


def test_rank_pair_from_either_file(tmp_path: Path) -> None:
    items = write(tmp_path / "Toys_item_org_rank.txt", "1 5 6 7\n2 6 7 8\n")
    write(tmp_path / "Toys_time_org_rank.txt", "1 1 2 3\n2 1 1 1\n")
    for given in ("Toys_item_org_rank.txt", "Toys_time_org_rank.txt"):
        dataset = load_dataset(config(tmp_path, dataset="amazon-beauty", path=str(tmp_path / given)))
        assert dataset.item_ids.tolist() == [1, 2, 3, 2, 3, 4]
    assert dataset.fingerprint["sources"].keys() == {items.name, "Toys_time_org_rank.txt"}


def test_generic_csv_dataset(tmp_path: Path) -> None:
    rows = "b,x,3,1\na,y,1,0\nb,z,2,1\na,x,2,1\nb,x,9,0\na,z,0,1\n"
    source = write(tmp_path / "log.csv", "user,item,timestamp,rating\n" + rows)
    dataset = load_dataset(config(tmp_path, dataset="csv", path=str(source)))
    assert dataset.item_ids.tolist() == [3, 2, 1, 3, 1, 1]  # a: z, y, x; b: z, x, x
    assert dataset.ratings.tolist() == [1, 0, 1, 1, 1, 0]


def test_cache_root_precedence(tmp_path: Path) -> None:
    assert cache_module.cache_root("/x", environ={"GR_SCALING_CACHE": "/y"}) == Path("/x")
    assert cache_module.cache_root(None, environ={"GR_SCALING_CACHE": "/y"}) == Path("/y")
    assert cache_module.cache_root(None, environ={}) == Path("~/.cache/gr-scaling").expanduser()


@pytest.mark.parametrize(
    ("dataset", "files", "expected"),
    [
        ("ml-1m", {"ratings.dat": "1::2::3::4\n1::2::3::4::5\n"}, r"ratings\.dat:2: expected 4 fields separated by '::'"),
        ("ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n1,x,3,4\n"}, r"ratings\.csv:2: item must be an"),
        ("ml-100k", {"u.data": "1\t2\t3\t4\n1\t2\t3\tlate\n"}, r"u\.data:2: timestamp must be an integer"),
        ("amazon-books", {"ratings_Books.csv": "A,1,5.0,9\nB,2,five,9\n"}, r"ratings_Books\.csv:2: rating must be a"),
        (
            "amazon-beauty",
            {"Beauty_item_org_rank.txt": "1 2 3\n", "Beauty_time_org_rank.txt": "1 5\n"},
            r"Beauty_time_org_rank\.txt:1: user 1 has 1 timestamps but .*Beauty_item_org_rank\.txt:1 lists 2 items",
        ),
        ("csv", {"log.csv": "user,item,timestamp\na,b,1\na,b\n"}, r"log\.csv:3: expected 3 fields separated by ','"),
        ("ml-100k", {"u.data": ""}, r"u\.data: file is empty$"),
    ],
)
def test_bad_input_of_every_format_is_one_line_and_caches_nothing(
    tmp_path: Path, dataset: str, files: dict[str, str], expected: str
) -> None:
    folder = tmp_path / "raw"
    for name, text in files.items():
        write(folder / name, text)
    path = folder / next(iter(files)) if dataset == "csv" else folder
    with pytest.raises(DataError) as caught:
        load_dataset(config(tmp_path, dataset=dataset, path=str(path)))
    message = str(caught.value)
    assert re.search(expected, message) and message.startswith(str(folder)) and "\n" not in message, message
    assert entries(tmp_path) == []
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]


def test_every_dataset_name_has_one_source() -> None:
    """Each data.dataset value is read from files by one reader or made by a generator, and every
    downloadable dataset is one of them: adding a dataset cannot leave a name without its reader."""
    from typing import get_args

    from scaling.config import DatasetName
    from scaling.data.download import KNOWN_DATASETS

    generated = {"synthetic-dp", "synthetic-industrial"}
    names = set(get_args(DatasetName))
    assert names == set(loading._READERS) | generated
    assert not set(loading._READERS) & generated
    assert set(KNOWN_DATASETS) <= set(loading._READERS)
