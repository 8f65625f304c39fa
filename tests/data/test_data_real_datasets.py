"""The real ML-100K and Amazon Beauty files load with their documented counts (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaling.config import DataConfig
from scaling.data.loading import load_dataset
from scaling.data.readers import read_movielens_100k


def test_ml_100k_counts_and_tie_order(shared_datasets: Path, tmp_path: Path) -> None:
    folder = shared_datasets / "ml-100k"
    dataset = load_dataset(DataConfig(dataset="ml-100k", path=str(folder), cache_dir=str(tmp_path)))
    assert (dataset.num_users, dataset.num_items, dataset.num_interactions) == (943, 1682, 100_000)
    lengths = dataset.lengths()
    assert (lengths.min(), int(np.median(lengths)), lengths.max()) == (20, 65, 737)
    assert np.bincount(dataset.ratings.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert round(dataset.fingerprint["counts"]["timestamp_tie_fraction"], 2) == 0.51
    # ties keep file order: within each user and timestamp, rows appear as in u.data
    raw = read_movielens_100k(folder / "u.data")
    file_row = {(int(u), int(i)): row for row, (u, i) in enumerate(zip(raw.users, raw.items))}
    user_of = np.repeat(np.arange(dataset.num_users), lengths)
    raw_user = np.unique(raw.users)[user_of]
    raw_item = np.unique(raw.items)[dataset.item_ids - 1]
    rows = np.array([file_row[(u, i)] for u, i in zip(raw_user.tolist(), raw_item.tolist())])
    same_time = (np.diff(dataset.timestamps) == 0) & (user_of[1:] == user_of[:-1])
    assert same_time.sum() > 40_000
    assert np.all(rows[1:][same_time] > rows[:-1][same_time])


def test_amazon_beauty_counts(shared_datasets: Path, tmp_path: Path) -> None:
    folder = shared_datasets / "amazon-beauty-ticoserec"
    data = DataConfig(dataset="amazon-beauty", path=str(folder), cache_dir=str(tmp_path))
    dataset = load_dataset(data)
    assert (dataset.num_users, dataset.num_items, dataset.num_interactions) == (22_363, 12_101, 198_502)
    lengths = dataset.lengths()
    assert (lengths.min(), int(np.median(lengths)), lengths.max()) == (5, 6, 204)
    assert dataset.ratings is None
    # the rank files are already chronological: order is exactly the files' order
    first_line = (folder / "Beauty_item_org_rank.txt").read_text().splitlines()[0].split()
    assert dataset.item_ids[: lengths[0]].tolist() == [int(item) for item in first_line[1:]]
    assert load_dataset(data).fingerprint == dataset.fingerprint  # cache hit, same fingerprint
