"""Data hygiene in the one loading path: duplicated events, out-of-range numbers, unreadable files, cache litter."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from scaling.config import DataConfig, load_run_config
from scaling.data.cache import remove_stale_temporaries
from scaling.data.loading import load_dataset
from scaling.data.readers import read_interaction_table, read_movielens_100k
from scaling.data.splits import leave_one_out_events


def u_data(path: Path, rows: list[tuple[int, int, int]]) -> Path:
    path.write_text("".join(f"{user}\t{item}\t4\t{time}\n" for user, item, time in rows))
    return path


def test_duplicated_events_are_dropped_and_counted_so_the_test_item_never_leaks(tmp_path: Path, capsys) -> None:
    """A duplicate of each user's last (test) event sat in the history right before it: dropped, it cannot leak."""
    rows = [(user, item, 100 * item) for user in range(1, 4) for item in range(1, 7)]
    duplicates = [(user, 6, 600) for user in range(1, 4)]  # the test item again, same timestamp
    source = u_data(tmp_path / "u.data", rows + duplicates)
    config = DataConfig(dataset="ml-100k", path=str(source), cache_dir=str(tmp_path / "cache"))
    dataset = load_dataset(config)
    assert dataset.num_interactions == len(rows)
    assert dataset.fingerprint["counts"]["duplicate_events"] == 3
    split = leave_one_out_events(dataset, np.ones(dataset.num_interactions, dtype=bool))
    for test_event in split.test:  # the test item is nowhere in its user's history
        user = np.searchsorted(dataset.offsets, test_event, side="right") - 1
        history = dataset.item_ids[dataset.offsets[user]:test_event]
        assert dataset.item_ids[test_event] not in history

    from scaling.commands.data import format_stats
    assert re.search(r"^duplicate events\s+3 dropped", format_stats(dataset, 10), flags=re.MULTILINE)

    refused = DataConfig(dataset="ml-100k", path=str(source), cache_dir=str(tmp_path / "cache"),
                         duplicate_events="refuse")
    with pytest.raises(DataError, match=r"u\.data: 3 events repeat an earlier event's user, item and timestamp "
                                        r"\(the first is data row 19\); .*duplicate_events: drop"):
        load_dataset(refused)


def test_result_json_counts_the_dropped_duplicates(tmp_path: Path) -> None:
    from scaling.train import train

    rows = [(user, item, 100 * item) for user in range(1, 5) for item in range(1, 6)]
    source = u_data(tmp_path / "u.data", rows + [(1, 2, 200), (1, 2, 200)])
    config = load_run_config(None, ["data.dataset=ml-100k", f"data.path={source}", f"data.cache_dir={tmp_path}",
                                    "model.name=sasrec", "model.num_layers=1", "model.embedding_dim=8",
                                    "train.epochs=1", "train.num_negatives=4", "train.device=cpu", "data.max_seq_len=8"])
    result = train(config, out_dir=tmp_path / "run", progress=False)
    assert result["dataset"]["counts"]["duplicate_events"] == 2
    assert '"duplicate_events": 2' in (tmp_path / "run" / "result.json").read_text()


@pytest.mark.parametrize("value", ["1e19", "1e300", "-9.3e18"])
def test_csv_timestamps_beyond_int64_are_refused_with_file_and_line(tmp_path: Path, value: str) -> None:
    source = tmp_path / "events.csv"
    source.write_text(f"user,item,timestamp\na,x,1\n\na,y,2\nb,x,{value}\nb,y,3\n")
    with pytest.raises(DataError) as error:
        read_interaction_table(source)
    assert str(error.value).startswith(f"{source}:5: timestamp {float(value)!r} is out of range")


def test_integer_overflow_in_tab_separated_files_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "u.data"
    source.write_text("1\t1\t4\t100\n1\t2\t4\t99999999999999999999\n")
    with pytest.raises(DataError, match=r"u\.data:2: timestamp 99999999999999999999 is out of range"):
        read_movielens_100k(source)
    source.write_text("1\t1\t4\t100\n1\t2\t4\t9223372036854775807\n")  # the largest int64 is still read
    assert read_movielens_100k(source).timestamps[-1] == np.iinfo(np.int64).max


def test_rank_pair_overflow_names_the_line(tmp_path: Path) -> None:
    from scaling.data.readers import read_amazon_rank_pair

    items = tmp_path / "Beauty_item_org_rank.txt"
    times = tmp_path / "Beauty_time_org_rank.txt"
    items.write_text("1 10 11\n2 12 13\n")
    times.write_text("1 5 6\n2 7 123456789012345678901234\n")
    with pytest.raises(DataError, match=r"_time_org_rank\.txt:2: timestamp 123456789012345678901234 is out of range"):
        read_amazon_rank_pair(items, times)


def test_an_unreadable_data_file_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    source = u_data(tmp_path / "u.data", [(1, 1, 1), (1, 2, 2), (1, 3, 3)])
    real_open = open

    def denied(path, *args, **kwargs):  # root ignores permission bits, so the denial is simulated
        if str(path) == str(source):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    config = DataConfig(dataset="ml-100k", path=str(source), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"u\.data: cannot be read \(permission denied\)"):
        load_dataset(config)


def test_cache_entries_are_group_readable_and_killed_writes_are_cleaned(tmp_path: Path) -> None:
    source = u_data(tmp_path / "u.data", [(1, 1, 1), (1, 2, 2), (1, 3, 3)])
    folder = tmp_path / "cache" / "sequences"
    folder.mkdir(parents=True)
    litter = folder / ".ml-100k-0123.npz.abc123.tmp"
    litter.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(litter, (old, old))
    fresh = folder / ".ml-100k-4567.npz.def456.tmp"  # a writer still at work
    fresh.write_bytes(b"y")
    old_umask = os.umask(0o022)
    try:
        load_dataset(DataConfig(dataset="ml-100k", path=str(source), cache_dir=str(tmp_path / "cache")))
    finally:
        os.umask(old_umask)
    entries = list(folder.glob("*.npz"))
    assert len(entries) == 1 and stat.S_IMODE(entries[0].stat().st_mode) & 0o044 == 0o044
    assert not litter.exists() and fresh.exists()
    assert remove_stale_temporaries(folder, older_than_seconds=0) == 1 and not fresh.exists()


def test_a_cache_that_cannot_be_written_only_warns(tmp_path: Path, monkeypatch) -> None:
    source = u_data(tmp_path / "u.data", [(1, 1, 1), (1, 2, 2), (1, 3, 3)])

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("numpy.savez", full)
    with pytest.warns(UserWarning, match="No space left on device"):
        dataset = load_dataset(DataConfig(dataset="ml-100k", path=str(source), cache_dir=str(tmp_path / "cache")))
    assert dataset.num_interactions == 3
    assert not [p for p in (tmp_path / "cache" / "sequences").iterdir()]  # no entry, no temporary file
