"""Downloads over local file:// URLs: verified, unpacked atomically, nothing left behind on failure."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from scaling.config import DataConfig
from scaling.data import download
from scaling.data.download import (
    KNOWN_DATASETS,
    Checksum,
    KnownDataset,
    RemoteFile,
    UnverifiedDownloadWarning,
    download_dataset,
)
from scaling.data.loading import load_dataset
from core.errors import DataError

RATINGS = b"1::10::5::100\n1::11::4::101\n1::12::3::102\n"


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def movielens_like(archive: Path, checksum: str | None, file_checksums=None) -> KnownDataset:
    return KnownDataset(
        name="ml-1m",
        files=("ratings.dat",),
        remotes=(
            RemoteFile(
                archive.as_uri(),
                Checksum("md5", checksum, "test") if checksum else None,
                name="ml-1m.zip",
                members={"ml-1m/ratings.dat": "ratings.dat"},
            ),
        ),
        file_checksums=file_checksums or {},
        archive_folder="ml-1m",
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_zip_is_verified_and_unpacked(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": RATINGS, "ml-1m/README": b"readme"})
    target = tmp_path / "datasets" / "ml-1m"
    files = download_dataset(movielens_like(archive, md5(archive.read_bytes())), target)
    assert files == (target / "ratings.dat",)
    assert files[0].read_bytes() == RATINGS
    assert leftovers(target) == ["ratings.dat"]  # the archive and scratch folder are gone


def test_archive_checksum_mismatch_keeps_nothing(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": RATINGS})
    target = tmp_path / "datasets" / "ml-1m"
    with pytest.raises(DataError) as caught:
        download_dataset(movielens_like(archive, "0" * 32), target)
    message = str(caught.value)
    assert message.startswith(f"{archive.as_uri()}: md5 {md5(archive.read_bytes())} does not match the published 0000")
    assert "the file was discarded" in message
    assert leftovers(target) == []


def test_extracted_file_checksum_mismatch_keeps_nothing(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": RATINGS})
    target = tmp_path / "datasets" / "ml-1m"
    known = movielens_like(archive, md5(archive.read_bytes()), {"ratings.dat": Checksum("md5", "f" * 32, "test")})
    with pytest.raises(DataError, match=r"ml-1m\.zip!ml-1m/ratings\.dat: md5 .* does not match"):
        download_dataset(known, target)
    assert leftovers(target) == []


def test_plain_file_without_published_checksum_warns_with_its_sha256(tmp_path: Path) -> None:
    source = tmp_path / "upstream" / "ratings_Books.csv"
    source.parent.mkdir()
    source.write_bytes(b"A1,0001,5.0,1000\n")
    known = KnownDataset(
        name="amazon-books",
        files=("ratings_Books.csv",),
        remotes=(RemoteFile(source.as_uri(), None, name="ratings_Books.csv"),),
    )
    with pytest.warns(UnverifiedDownloadWarning, match=hashlib.sha256(source.read_bytes()).hexdigest()):
        (file,) = download_dataset(known, tmp_path / "datasets" / "amazon-books")
    assert file.read_bytes() == source.read_bytes()


def test_missing_upstream_file_gives_the_manual_instructions(tmp_path: Path) -> None:
    known = movielens_like(tmp_path / "absent.zip", None)
    with pytest.raises(DataError) as caught:
        download_dataset(known, tmp_path / "datasets" / "ml-1m")
    message = str(caught.value)
    folder = tmp_path / "datasets" / "ml-1m"
    assert message.startswith(f"ml-1m not found: put ratings.dat in {folder}/ (download file://")
    assert "(download failed:" in message and "\n" not in message


def test_load_dataset_downloads_a_missing_known_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": RATINGS})
    registry = {**KNOWN_DATASETS, "ml-1m": movielens_like(archive, md5(archive.read_bytes()))}
    monkeypatch.setattr(download, "KNOWN_DATASETS", registry)
    data = DataConfig(dataset="ml-1m", cache_dir=str(tmp_path / "cache"), download=True)
    dataset = load_dataset(data)
    assert dataset.item_ids.tolist() == [1, 2, 3]
    assert (tmp_path / "cache" / "datasets" / "ml-1m" / "ratings.dat").is_file()


def test_download_false_never_opens_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def forbidden(*args, **kwargs):
        raise AssertionError("download: false must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    for name in KNOWN_DATASETS:
        with pytest.raises(DataError, match=f"^{name} not found: put "):
            load_dataset(DataConfig(dataset=name, cache_dir=str(tmp_path), download=False))


def test_registry_uses_official_addresses_and_checksums() -> None:
    urls = {name: [remote.url for remote in known.remotes] for name, known in KNOWN_DATASETS.items()}
    assert urls["ml-1m"] == ["https://files.grouplens.org/datasets/movielens/ml-1m.zip"]
    assert urls["ml-20m"] == ["https://files.grouplens.org/datasets/movielens/ml-20m.zip"]
    assert urls["ml-100k"] == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert urls["amazon-books"] == ["https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/ratings_Books.csv"]
    assert all("KingGugu/TiCoSeRec/302b2959f27bb16bb77acae5a471de82819bd1bd" in url for url in urls["amazon-beauty"])
    assert all(url.startswith("https://") for remotes in urls.values() for url in remotes)
    for name, known in KNOWN_DATASETS.items():
        for remote in known.remotes:
            if remote.checksum is not None:
                length = {"md5": 32, "sha256": 64}[remote.checksum.algorithm]
                assert len(remote.checksum.hexdigest) == length and int(remote.checksum.hexdigest, 16) >= 0
            else:
                # files with no published checksum we could find (used unverified, with a warning)
                assert name in ("amazon-books", "yambda", "kuairand")


def test_registered_checksums_match_the_local_copies(shared_datasets: Path) -> None:
    """The Beauty and u.data checksums in the registry are those of the byte-identical shared copies."""
    beauty = KNOWN_DATASETS["amazon-beauty"]
    for remote in beauty.remotes:
        data = (shared_datasets / "amazon-beauty-ticoserec" / remote.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == remote.checksum.hexdigest
    u_data = KNOWN_DATASETS["ml-100k"].file_checksums["u.data"]
    assert hashlib.md5((shared_datasets / "ml-100k" / "u.data").read_bytes()).hexdigest() == u_data.hexdigest
