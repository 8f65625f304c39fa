"""What a sweep keeps on disk: a manifest of its trials and one record per trial, written atomically.

Layout under ``STORAGE/NAME`` (a local folder or any pyarrow filesystem URI, e.g. s3://); the names
of the first three are the results contract's (:mod:`core.results_schema`)::

    sweep.json             the manifest: sweep name, axis keys, every trial (id, group, point)
    trials/<trial_id>.json one record per trial: its config, status, every evaluation it
                           reported and its final report
    results.parquet        the results table, rebuilt from the two above
    tune/                  Ray Tune's own experiment folders (one per invocation)

A record is rewritten whole (temporary file + rename) after every report, so it is always a
complete snapshot; a trial that is run again starts a fresh record. The results table is a
pure function of the manifest and the records, so rebuilding it can never duplicate a row.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from core.configtools import content_digest, to_dict
from core.errors import UserError
from core.files import free_space_warning, json_safe
from core.results_schema import FINISHED_STATUSES, RUNNING, STATUSES, TRIALS_DIR
from scaling.sweep.expand import Trial

TUNE_DIR = "tune"
TEMPORARY_SUFFIX = ".tmp"  # what write_bytes writes before its rename
RECORD_KEYS = ("trial_id", "group", "model", "family", "seed", "config", "status", "evaluations")


def storage_uri(storage: str) -> str:
    """A URI as given, or a local path made absolute (Ray Tune needs absolute storage paths)."""
    if "://" in storage:
        return storage.rstrip("/")
    return str(Path(os.path.expanduser(storage)).resolve())


class SweepStore:
    """Reads and atomically writes the files of one sweep (see the module docstring for the layout)."""

    def __init__(self, storage: str, name: str) -> None:
        self.root = f"{storage_uri(storage)}/{name}"
        try:
            self.filesystem, self.path = pafs.FileSystem.from_uri(self.root)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot open sweep storage {self.root}: {str(error).splitlines()[0]}") from None

    def _file(self, relative: str) -> str:
        return f"{self.path}/{relative}"

    def check_writable_location(self) -> str | None:
        """Refuse storage whose sweep folder (or a folder above it) is a file, before anything runs; a warning
        when a local folder's disk is nearly full."""
        path = self.path
        while path and path != "/":
            info = self.filesystem.get_file_info(path)
            if info.type == pafs.FileType.File:
                raise UserError(f"sweep storage {self.root}: {path} is a file, not a folder; pass --storage DIR")
            if info.type == pafs.FileType.Directory:
                break
            path = path.rsplit("/", 1)[0] if "/" in path.strip("/") else ""
        if not path or not isinstance(self.filesystem, pafs.LocalFileSystem):
            return None
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"sweep storage {self.root}: cannot write in {path} (permission denied); pass --storage DIR")
        return free_space_warning(Path(path), "sweep storage")

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write via a temporary sibling and a rename: readers see the old file or the new one, never half."""
        target = self._file(relative)
        self.filesystem.create_dir(target.rsplit("/", 1)[0], recursive=True)
        temporary = f"{target}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}"
        try:
            with self.filesystem.open_output_stream(temporary) as stream:
                stream.write(data)
            self.filesystem.move(temporary, target)
        except BaseException:
            self._delete_quietly(temporary)  # a full disk or a kill between the two must not leave litter
            raise

    def remove_temporaries(self) -> int:
        """Delete the temporary files a killed writer left (call only while holding the sweep's lock)."""
        removed = 0
        for folder in (self.path, self._file(TRIALS_DIR)):
            selector = pafs.FileSelector(folder, allow_not_found=True)
            for info in self.filesystem.get_file_info(selector):
                if info.type == pafs.FileType.File and info.base_name.endswith(TEMPORARY_SUFFIX):
                    removed += self._delete_quietly(info.path)
        return removed

    def _delete_quietly(self, path: str) -> bool:
        try:
            self.filesystem.delete_file(path)
            return True
        except (FileNotFoundError, OSError):
            return False

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(self._file(relative)) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def write_json(self, relative: str, data: Any) -> None:
        self.write_bytes(relative, (json.dumps(json_safe(data), indent=1) + "\n").encode())

    def read_json(self, relative: str) -> Any:
        data = self.read_bytes(relative)
        if data is None:
            return None
        try:
            return json.loads(data)
        except json.JSONDecodeError as error:
            raise UserError(f"{self.root}/{relative} is not valid JSON ({error.msg}); delete it to rerun that trial") from None

    def record_files(self) -> list[pafs.FileInfo]:
        """The trial record files on disk (``TRIALS_DIR/*.json``)."""
        selector = pafs.FileSelector(self._file(TRIALS_DIR), allow_not_found=True)
        return [info for info in self.filesystem.get_file_info(selector)
                if info.type == pafs.FileType.File and info.base_name.endswith(".json")]

    def read_records(self, files: list[pafs.FileInfo] | None = None) -> dict[str, dict[str, Any]]:
        """trial_id -> record, for every record file on disk (or those of ``files``, from :meth:`record_files`)."""
        records = {}
        for info in self.record_files() if files is None else files:
            name = info.base_name
            record = self.read_json(f"{TRIALS_DIR}/{name}")
            check_record(record, name.removesuffix(".json"), f"{self.root}/{TRIALS_DIR}/{name}")
            records[record["trial_id"]] = record
        return records

    def write_record(self, record: dict[str, Any]) -> None:
        self.write_json(f"{TRIALS_DIR}/{record['trial_id']}.json", record)

    @property
    def tune_storage(self) -> str:
        """Where Ray Tune keeps its experiment folders (``storage_path`` of its RunConfig)."""
        return f"{self.root}/{TUNE_DIR}"


@dataclass(frozen=True)
class Manifest:
    """The sweep's trials as expanded when it last started: what the results table is built over."""

    name: str
    axes: list[str]  # every axis key of the sweep, in order of first appearance
    trials: list[dict[str, Any]]  # {"trial_id", "group", "point"} per trial, in sweep order

    @staticmethod
    def of(name: str, trials: list[Trial]) -> "Manifest":
        axes: list[str] = []
        for trial in trials:
            axes.extend(key for key in trial.point if key not in axes)
        entries = [{"trial_id": t.trial_id, "group": t.group, "point": t.point} for t in trials]
        return Manifest(name, axes, entries)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "axes": self.axes, "trials": self.trials}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Manifest":
        return Manifest(data["name"], list(data["axes"]), list(data["trials"]))


def new_record(trial: Trial, attempt: int) -> dict[str, Any]:
    """A fresh record for a trial that is starting (again): no evaluations, status running."""
    return {
        "trial_id": trial.trial_id,
        "group": trial.group,
        "model": trial.model,
        "family": trial.family,
        "seed": trial.config.seed,
        "config": to_dict(trial.config),
        "status": RUNNING,
        "failure_reason": None,
        "attempt": attempt,
        "evaluations": [],
        "final": None,
    }


def check_record(record: Any, trial_id: str, where: str) -> None:
    """Refuse a file in trials/ that is not the record of the trial its name says (one-line UserError)."""
    fix = "delete it to rerun that trial (scaling sweep ... --resume)"
    if not isinstance(record, dict) or any(key not in record for key in RECORD_KEYS):
        missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
        raise UserError(f"{where} is not a trial record (missing {', '.join(missing)}); {fix}")
    if record["trial_id"] != trial_id:
        raise UserError(f"{where} claims trial id {record['trial_id']!r} but is named for {trial_id!r}; {fix}")
    if not isinstance(record["config"], dict) or not trial_id.endswith(f"-{content_digest(record['config'])}"):
        raise UserError(f"{where}: its config is not the one trial {trial_id!r} names (the id ends with its digest); {fix}")
    if not isinstance(record["evaluations"], list) or record["status"] not in STATUSES:
        raise UserError(f"{where}: status {record['status']!r} or its evaluations are not a trial record's; {fix}")


def finished(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("status") in FINISHED_STATUSES

