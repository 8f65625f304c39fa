"""Yambda and KuaiRand: small files written in each official format, read into multi-hot action streams."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reader_fixtures import error_of

from core.errors import DataError
from scaling.config import DataConfig
from scaling.data import download
from scaling.data.event_logs import KUAIRAND_TASKS, YAMBDA_TASKS, read_kuairand, read_yambda
from scaling.data.features import feature_spec, impression_features
from scaling.data.loading import load_dataset

KUAIRAND_HEADER = ("user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,"
                   "is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,"
                   "is_profile_enter,is_rand,tab")


def yambda_file(path: Path, rows: list[tuple], event_type: pa.DataType = pa.string()) -> Path:
    """rows of (uid, item_id, timestamp, is_organic, played_ratio_pct, track_length_seconds, event_type)."""
    names = ["uid", "item_id", "timestamp", "is_organic", "played_ratio_pct", "track_length_seconds", "event_type"]
    types = [pa.uint32(), pa.uint32(), pa.uint32(), pa.uint8(), pa.uint16(), pa.uint32(), event_type]
    columns = [pa.array([row[k] for row in rows], type=kind) if kind != event_type
               else pa.array([row[k] for row in rows]).cast(event_type) for k, kind in enumerate(types)]
    pq.write_table(pa.table(dict(zip(names, columns))), path)
    return path


def kuairand_line(user: int, video: int, time_ms: int, flags: str, play_ms: int = 5000) -> str:
    """One log line; ``flags`` is the 7 flags click..long_view as a string of digits."""
    return (f"{user},{video},20220409,900,{time_ms},{','.join(flags)},{play_ms},70100,0,0,0,0,pool")


def kuairand_file(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([KUAIRAND_HEADER, *lines]) + "\n")
    return path


def bits_of(raw, tasks) -> list[set[str]]:
    return [{task for k, task in enumerate(tasks) if int(value) >> k & 1} for value in raw.ratings]




# --- Yambda ---------------------------------------------------------------------------------------


def small_yambda(tmp_path: Path) -> Path:
    return yambda_file(tmp_path / "multi_event.parquet", [
        (10, 500, 100, 1, 100, 180, "listen"),
        (10, 500, 100, 1, None, None, "like"),  # same 5-second step as its listen: one event, two actions
        (10, 501, 105, 0, 50, 200, "listen"),  # exactly 50%: not Listen+ (over 50% is)
        (10, 502, 110, 0, 51, 200, "listen"),
        (20, 500, 90, 1, 10, 180, "listen"),
        (20, 503, 95, 1, None, None, "dislike"),
        (20, 503, 300, 1, None, None, "undislike"),
        (20, 500, 400, 1, None, None, "unlike"),
        (20, 504, 500, 0, 240, 100, "listen"),  # replayed: over 100%
    ])


def test_yambda_multi_event_becomes_multi_hot_events(tmp_path: Path) -> None:
    raw = read_yambda(small_yambda(tmp_path))
    assert raw.users.tolist() == [10, 10, 10, 20, 20, 20, 20, 20]
    assert raw.items.tolist() == [500, 501, 502, 500, 503, 503, 500, 504]
    assert raw.timestamps.tolist() == [100, 105, 110, 90, 95, 300, 400, 500]
    assert bits_of(raw, YAMBDA_TASKS) == [
        {"listen", "listen_plus", "like"}, {"listen"}, {"listen", "listen_plus"}, {"listen"},
        {"dislike"}, {"undislike"}, {"unlike"}, {"listen", "listen_plus"},
    ]


def test_yambda_event_type_may_be_dictionary_encoded(tmp_path: Path) -> None:
    rows = [(1, 2, 5, 1, 90, 100, "listen"), (1, 3, 10, 1, None, None, "like")]
    raw = read_yambda(yambda_file(tmp_path / "m.parquet", rows, pa.dictionary(pa.int8(), pa.string())))
    assert bits_of(raw, YAMBDA_TASKS) == [{"listen", "listen_plus"}, {"like"}]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(1, 2, 5, 1, 90, 100, "listen"), (1, 3, 10, 1, None, None, "skip")],
         r"m\.parquet: row 2: event_type 'skip' is not one of listen, like, dislike, unlike, undislike$"),
        ([(1, 2, 5, 1, 90, 100, "listen"), (1, 3, 10, 1, None, 100, "listen")],
         r"m\.parquet: row 2: played_ratio_pct is missing \(null\) on a listen event$"),
        ([(1, 2, 5, 1, 90, 100, "listen"), (None, 3, 10, 1, 5, 100, "listen")], r"m\.parquet: row 2: uid is missing"),
    ],
)
def test_yambda_bad_rows_are_named(tmp_path: Path, rows: list[tuple], expected: str) -> None:
    message = error_of(read_yambda, yambda_file(tmp_path / "m.parquet", rows))
    assert re.search(expected, message), message


def test_yambda_missing_column_and_unreadable_file(tmp_path: Path) -> None:
    pq.write_table(pa.table({"uid": [1], "item_id": [2], "timestamp": [3]}), tmp_path / "m.parquet")
    assert "missing column 'played_ratio_pct'" in error_of(read_yambda, tmp_path / "m.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert "not a readable Parquet file" in error_of(read_yambda, tmp_path / "bad.parquet")


# --- KuaiRand -------------------------------------------------------------------------------------


def test_kuairand_logs_become_multi_hot_events(tmp_path: Path) -> None:
    first = kuairand_file(tmp_path / "log_standard_4_08_to_4_21_pure.csv", [
        kuairand_line(0, 4354972, 1649467982289, "0000000"),
        kuairand_line(0, 2528540, 1649467983000, "1100001", play_ms=5332),
    ])
    second = kuairand_file(tmp_path / "log_standard_4_22_to_5_08_pure.csv", [
        kuairand_line(7, 11, 1650585600999, "1011110"),
    ])
    raw = read_kuairand(first, second)
    assert raw.users.tolist() == [0, 0, 7] and raw.items.tolist() == [4354972, 2528540, 11]
    assert raw.timestamps.tolist() == [1649467982, 1649467983, 1650585600]  # unix seconds (ms floored)
    assert bits_of(raw, KUAIRAND_TASKS) == [set(), {"click", "like", "long_view"},
                                            {"click", "follow", "comment", "forward", "hate"}]
    assert raw.sources == (first, second)


def test_kuairand_bad_lines_are_named(tmp_path: Path) -> None:
    path = kuairand_file(tmp_path / "log.csv", [kuairand_line(0, 1, 1000, "0000000"), "",
                                                 kuairand_line(0, 2, 2000, "0200000")])
    assert re.search(r"log\.csv:4: is_like must be 0 or 1, got 2$", error_of(read_kuairand, path))
    path = kuairand_file(tmp_path / "log2.csv", [kuairand_line(0, 1, 1000, "0000000"), "x,1,2,3"])
    assert re.search(r"log2\.csv:3: expected 19 fields", error_of(read_kuairand, path))
    path.write_text("user_id,video_id,time_ms\n1,2,3\n")
    assert re.search(r"log2\.csv:1: missing column 'is_click'", error_of(read_kuairand, path))


# --- through the loader: actions, DLRM features, cache, offline advice, download ---------------------


def test_loaded_yambda_has_interleaved_actions_and_dlrm_features(tmp_path: Path) -> None:
    config = DataConfig(dataset="yambda", path=str(small_yambda(tmp_path)), cache_dir=str(tmp_path / "cache"),
                        min_user_interactions=3)
    dataset = load_dataset(config)
    assert dataset.task_names == YAMBDA_TASKS and dataset.num_action_tokens == 1 << len(YAMBDA_TASKS)
    assert dataset.num_users == 2 and dataset.num_interactions == 8
    # user 20's events in time order: listen 500 (10%), dislike 503, undislike 503, unlike 500, listen 504
    user = slice(dataset.offsets[1], dataset.offsets[2])
    tokens = dataset.action_tokens[user]
    assert tokens.tolist() == [1 + 32, 1 + 4, 1 + 16, 1 + 8, 1 + 32 + 1]
    assert dataset.labels[user][:, YAMBDA_TASKS.index("listen_plus")].tolist() == [0, 0, 0, 0, 1]
    spec = feature_spec(dataset, history_len=4)
    assert spec.num_tasks == len(YAMBDA_TASKS)
    features = impression_features(dataset, np.arange(dataset.num_interactions), history_len=4)
    assert features.dense.shape == (8, spec.num_dense) and bool(features.dense.isfinite().all())
    again = load_dataset(config)  # a cache hit: same arrays
    assert np.array_equal(again.action_tokens, dataset.action_tokens)
    assert len(list((tmp_path / "cache" / "sequences").glob("yambda-*.npz"))) == 1


def test_loaded_kuairand_folder_reads_both_standard_logs(tmp_path: Path) -> None:
    folder = tmp_path / "kuairand"
    folder.mkdir()
    lines = [kuairand_line(u, 100 + i, 1649467982000 + 1000 * i, "1000001" if i % 2 else "0000000")
             for u in (1, 2) for i in range(3)]
    kuairand_file(folder / "log_standard_4_08_to_4_21_pure.csv", lines[:4])
    kuairand_file(folder / "log_standard_4_22_to_5_08_pure.csv", lines[4:])
    dataset = load_dataset(DataConfig(dataset="kuairand", path=str(folder), cache_dir=str(tmp_path / "cache")))
    assert dataset.task_names == KUAIRAND_TASKS and dataset.num_interactions == 6
    assert dataset.labels[:, 0].tolist() == [0, 1, 0, 0, 1, 0]


@pytest.mark.parametrize(("name", "files"), [
    ("yambda", "multi_event.parquet"),
    ("kuairand", "log_standard_4_08_to_4_21_pure.csv and log_standard_4_22_to_5_08_pure.csv"),
])
def test_offline_error_says_which_file_to_put_where(tmp_path: Path, name: str, files: str) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(dataset=name, cache_dir=str(tmp_path), download=False))
    message = str(caught.value)
    assert message.startswith(f"{name} not found: put {files} in {tmp_path / 'datasets' / name}/ (download https://")
    assert "\n" not in message


def test_kuairand_tar_archive_is_downloaded_and_unpacked(tmp_path: Path) -> None:
    logs = {log: kuairand_file(tmp_path / log, [kuairand_line(1, 2, 3000, "1000000")])
            for log in download.KNOWN_DATASETS["kuairand"].files}
    archive = tmp_path / "KuaiRand-Pure.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for log, path in logs.items():
            tar.add(path, arcname=f"KuaiRand-Pure/data/{log}")
    known = download.KNOWN_DATASETS["kuairand"]
    local = download.KnownDataset(
        name="kuairand", files=known.files, archive_folder=known.archive_folder,
        remotes=(download.RemoteFile(archive.as_uri(), None, name="KuaiRand-Pure.tar.gz",
                                     members=dict(known.remotes[0].members)),))
    with pytest.warns(download.UnverifiedDownloadWarning):
        found = download.download_dataset(local, tmp_path / "out")
    assert [path.read_text() for path in found] == [path.read_text() for path in logs.values()]
