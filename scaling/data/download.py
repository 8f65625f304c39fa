"""Known public datasets: official addresses, checksums, verified downloads and the offline message.

A download streams to a temporary file next to its destination (with a tqdm progress bar),
is checked against its published checksum and only then renamed into place or unpacked;
a failed or mismatching download leaves nothing behind. With ``data.download: false``
nothing here touches the network: :func:`missing_dataset_message` says which file to put where.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

from tqdm import tqdm

from scaling.data.cache import atomic_file
from core.errors import DataError

_CHUNK_BYTES = 1 << 20
_TIMEOUT_SECONDS = 60


class UnverifiedDownloadWarning(UserWarning):
    """A download was used without a checksum check because none is published."""


@dataclass(frozen=True)
class Checksum:
    """A published digest of a file and where it was published."""

    algorithm: Literal["md5", "sha256"]
    hexdigest: str
    source: str  # who publishes this value


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: a plain file saved as ``name``, or a zip or .tar.gz whose ``members`` are extracted."""

    url: str
    checksum: Checksum | None  # None: nothing published to verify against (warned at download)
    name: str  # local name of a plain file, or of the archive while it is unpacked
    members: Mapping[str, str] = field(default_factory=dict)  # zip member -> local file name

    @property
    def is_archive(self) -> bool:
        return bool(self.members)


@dataclass(frozen=True)
class KnownDataset:
    """A public dataset the loader can find on disk or fetch."""

    name: str
    files: tuple[str, ...]  # what the reader needs, in reader-argument order
    remotes: tuple[RemoteFile, ...]
    file_checksums: Mapping[str, Checksum] = field(default_factory=dict)  # checks of the final files
    archive_folder: str | None = None  # folder a manual unzip creates (``<dir>/ml-1m/ratings.dat`` is accepted)


_YAMBDA = "https://huggingface.co/datasets/yandex/yambda/resolve/main"
_KUAIRAND_LOGS = ("log_standard_4_08_to_4_21_pure.csv", "log_standard_4_22_to_5_08_pure.csv")
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_TICOSEREC = "https://raw.githubusercontent.com/KingGugu/TiCoSeRec/302b2959f27bb16bb77acae5a471de82819bd1bd/data/Beauty"
# MovieLens archive md5s: the values GroupLens publishes next to each zip (<zip>.md5), as
# reproduced in eli-osherovich/papers_with_code datasets/movielens/dl_config.py and (ml-1m)
# AKSW/frankgraphbench datasets/ml-1m.zip.md5.
_GROUPLENS_MD5 = "GroupLens <zip>.md5 (via eli-osherovich/papers_with_code datasets/movielens/dl_config.py)"


def _movielens(name: str, ratings_file: str, zip_md5: str, file_md5: str | None = None) -> KnownDataset:
    """A GroupLens MovieLens release: ``<name>.zip`` holding ``<name>/<ratings_file>``.

    ``file_md5``: a published md5 of the ratings file itself (datasets/SOURCES.md), checked after extraction.
    """
    archive = RemoteFile(f"{_GROUPLENS}/{name}.zip", Checksum("md5", zip_md5, _GROUPLENS_MD5),
                         name=f"{name}.zip", members={f"{name}/{ratings_file}": ratings_file})
    file_checksums = {} if file_md5 is None else {ratings_file: Checksum("md5", file_md5, "datasets/SOURCES.md")}
    return KnownDataset(name=name, files=(ratings_file,), remotes=(archive,), file_checksums=file_checksums,
                        archive_folder=name)


KNOWN_DATASETS: Mapping[str, KnownDataset] = MappingProxyType(
    {
        "ml-1m": _movielens("ml-1m", "ratings.dat", "c4d9eecfca2ab87c1945afe126590906"),
        "ml-20m": _movielens("ml-20m", "ratings.csv", "cd245b17a1ae2cc31bb14903e1204af3"),
        # u.data's md5 as listed in the project's datasets/SOURCES.md and matched by the local copy
        "ml-100k": _movielens("ml-100k", "u.data", "0e33842e24a9c977be4e0107933c0723",
                              file_md5="6e47046882bad158b0efbb84cd5cb987"),
        "amazon-beauty": KnownDataset(
            name="amazon-beauty",
            files=("Beauty_item_org_rank.txt", "Beauty_time_org_rank.txt"),
            # sha256 of the byte-identical copies described in datasets/SOURCES.md (md5
            # d48cdae278228ad6ee80395e5b792c56 and 4ec2d0e41442bc0db110d2700d716eba there)
            remotes=(
                RemoteFile(
                    f"{_TICOSEREC}/Beauty_item_org_rank.txt",
                    Checksum(
                        "sha256",
                        "b95614189df525e1eb69dad579e84c6086468f2bb42dab894038949240307c4f",
                        "datasets/SOURCES.md copy of TiCoSeRec@302b295",
                    ),
                    name="Beauty_item_org_rank.txt",
                ),
                RemoteFile(
                    f"{_TICOSEREC}/Beauty_time_org_rank.txt",
                    Checksum(
                        "sha256",
                        "4e6a6e30f9dba1985ad9adae79a891df6b403e2132f0422a6f6e88f67d1fcc75",
                        "datasets/SOURCES.md copy of TiCoSeRec@302b295",
                    ),
                    name="Beauty_time_org_rank.txt",
                ),
            ),
        ),
        "amazon-books": KnownDataset(
            name="amazon-books",
            files=("ratings_Books.csv",),
            remotes=(
                # No checksum is published for this file (SNAP / McAuley's 2014 Amazon page list
                # none, nor does the HSTU reference preprocessor that downloads it); the download
                # is used unverified with a warning that prints its sha256. SNAP serves it over
                # https as well (the reference preprocessor's plain-http address is not used).
                RemoteFile(
                    "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/ratings_Books.csv",
                    None,
                    name="ratings_Books.csv",
                ),
            ),
        ),
        # The 50M-event flat release (the 500m and 5b folders hold the same layout). Hugging Face
        # publishes LFS sha256s only in its commit pages, and none for this file could be found:
        # the download is used unverified with a warning that prints its sha256.
        "yambda": KnownDataset(
            name="yambda",
            files=("multi_event.parquet",),
            remotes=(RemoteFile(f"{_YAMBDA}/flat/50m/multi_event.parquet", None, name="multi_event.parquet"),),
        ),
        # KuaiRand-Pure (the 27K and 1K releases hold the same log layout) from its Zenodo record;
        # no checksum of the archive could be found, so it is used unverified with a warning.
        "kuairand": KnownDataset(
            name="kuairand",
            files=_KUAIRAND_LOGS,
            remotes=(RemoteFile(
                "https://zenodo.org/records/10439422/files/KuaiRand-Pure.tar.gz?download=1", None,
                name="KuaiRand-Pure.tar.gz",
                members={f"KuaiRand-Pure/data/{log}": log for log in _KUAIRAND_LOGS},
            ),),
            archive_folder="KuaiRand-Pure/data",
        ),
    }
)


def locate_files(dataset: KnownDataset, directory: Path) -> tuple[Path, ...] | None:
    """The dataset's files in ``directory`` (or in its unzipped ``archive_folder``), or None if any is missing."""
    for folder in (directory, directory / dataset.archive_folder if dataset.archive_folder else None):
        if folder is not None and all((folder / name).is_file() for name in dataset.files):
            return tuple(folder / name for name in dataset.files)
    return None


def missing_dataset_message(dataset: KnownDataset, directory: Path) -> str:
    """One line saying which file(s) to put where, and where to download them."""
    files = " and ".join(dataset.files)
    urls = " and ".join(remote.url for remote in dataset.remotes)
    archives = [remote.name for remote in dataset.remotes if remote.is_archive]
    unpack = "" if not archives else " and untar it there" if archives[0].endswith(".tar.gz") else " and unzip it there"
    return f"{dataset.name} not found: put {files} in {directory}/ (download {urls}{unpack}), or set data.path"


def download_dataset(dataset: KnownDataset, directory: Path) -> tuple[Path, ...]:
    """Fetch, verify and unpack every file of ``dataset`` into ``directory``; return the reader's files."""
    directory.mkdir(parents=True, exist_ok=True)
    for remote in dataset.remotes:
        try:
            if remote.is_archive:
                _fetch_archive(remote, directory, dataset.file_checksums)
            else:
                fetch(remote.url, directory / remote.name, remote.checksum)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise DataError(f"{missing_dataset_message(dataset, directory)} (download failed: {reason})") from None
    files = locate_files(dataset, directory)
    if files is None:
        missing = " or ".join(dataset.files)
        raise DataError(f"{dataset.name}: the download finished but {directory} still lacks {missing}")
    return files


def fetch(url: str, destination: Path, checksum: Checksum | None) -> Path:
    """Stream ``url`` to ``destination`` through a temporary file, verified before it is renamed into place."""
    if url.startswith("http://"):  # anyone on the path could swap the file (file:// mirrors are fine)
        raise DataError(f"{url}: refusing a plain-http download; use https")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response, atomic_file(destination) as file:
        digest = hashlib.new(checksum.algorithm if checksum else "sha256")
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {destination.name}") as progress:
            while chunk := response.read(_CHUNK_BYTES):
                file.write(chunk)
                digest.update(chunk)
                progress.update(len(chunk))
        _verify(destination, digest.hexdigest(), checksum, what=url)
    return destination


def _fetch_archive(remote: RemoteFile, directory: Path, file_checksums: Mapping[str, Checksum]) -> None:
    """Download a zip or .tar.gz into a scratch folder, verify it, then extract its members (each verified if known)."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as scratch:
        archive_path = fetch(remote.url, Path(scratch) / remote.name, remote.checksum)
        try:
            for member, local_name in remote.members.items():
                destination = directory / local_name
                with _archive_member(archive_path, member) as source, atomic_file(destination) as target:
                    checksum = file_checksums.get(local_name)
                    digest = hashlib.new(checksum.algorithm if checksum else "sha256")
                    while chunk := source.read(_CHUNK_BYTES):
                        target.write(chunk)
                        digest.update(chunk)
                    if checksum is not None:
                        _verify(destination, digest.hexdigest(), checksum, what=f"{remote.url}!{member}")
        except (zipfile.BadZipFile, tarfile.TarError, KeyError) as error:
            kind = "tar.gz" if remote.name.endswith(".tar.gz") else "zip"
            raise DataError(f"{remote.url}: not the expected {kind} archive ({error})") from None


@contextmanager
def _archive_member(archive_path: Path, member: str) -> Iterator[IO[bytes]]:
    """``member`` of a zip or (by its name) .tar.gz archive, opened for reading."""
    if archive_path.name.endswith(".tar.gz"):
        with tarfile.open(archive_path, "r:gz") as archive:
            source = archive.extractfile(member)
            if source is None:
                raise KeyError(f"{member} is not a regular file in the archive")
            with source:
                yield source
        return
    with zipfile.ZipFile(archive_path) as archive, archive.open(member) as source:
        yield source


def _verify(path: Path, hexdigest: str, checksum: Checksum | None, what: str) -> None:
    """Raise if ``hexdigest`` is not the published one; warn when nothing is published."""
    if checksum is None:
        warnings.warn(
            f"{what}: no published checksum to verify against; using {path.name} unverified (sha256 {hexdigest})",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )
        return
    if hexdigest.lower() != checksum.hexdigest.lower():
        raise DataError(
            f"{what}: {checksum.algorithm} {hexdigest} does not match the published {checksum.hexdigest} "
            f"({checksum.source}); the file was discarded, retry or fetch it by hand"
        )
