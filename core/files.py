"""Writing run records: JSON written atomically so a crash never leaves half a file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON readers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file and an atomic rename."""
    write_text_atomic(path, json.dumps(json_safe(data), indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


LOW_FREE_BYTES = 1 << 30  # below this much free space where output goes, warn before the work starts


def check_output_folder(folder: Path, option: str) -> str | None:
    """Refuse an output folder that cannot be created or written, before any work; a warning when space is low.

    ``option`` names the setting in messages (``--out``). Returns a one-line warning if the filesystem
    has less than :data:`LOW_FREE_BYTES` free, else None.
    """
    from core.errors import UserError

    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file, not a folder; pass a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {folder}: {existing} is a file, so the folder cannot be created; pass another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {folder}: {existing} is not writable (permission denied or read-only); "
                        "pass another folder")
    return free_space_warning(existing, option)


def check_output_file(path: Path, option: str) -> str | None:
    """Like :func:`check_output_folder` for a file to be written: not a folder, its folder writable."""
    from core.errors import UserError

    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; pass a file name")
    return check_output_folder(path.parent, option)


def free_space_warning(folder: Path, option: str) -> str | None:
    """A one-line warning if ``folder``'s filesystem has less than :data:`LOW_FREE_BYTES` free."""
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= LOW_FREE_BYTES:
        return None
    return f"{option} {folder}: only {free / 2**20:.0f} MiB free; the run may fail when writing its results"
