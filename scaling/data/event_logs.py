"""Multi-action event logs (Yambda, KuaiRand) read into interactions whose action is a multi-hot bitmask.

Both datasets log several kinds of user action per item. Each reader returns
:class:`RawInteractions` whose ``ratings`` column holds the event's *action bitmask*
``sum_k flag_k 2^k`` over the dataset's tasks (exact in float32 for the few tasks here), so the
shared build and cache carry it like any action value; :func:`with_logged_actions` then turns it
into the interleaved stream's action token ``1 + bitmask`` (the synthetic industrial stream's
encoding) and the ranking labels, one column per task.

Yambda (Yandex Music, huggingface.co/datasets/yandex/yambda), the flat ``multi_event.parquet``:
one row per event with ``uid``, ``item_id``, ``timestamp`` (seconds from the start of the log,
in 5-second steps), ``is_organic``, ``played_ratio_pct`` and ``track_length_seconds`` (listens
only) and ``event_type`` in listen / like / dislike / unlike / undislike. Tasks: ``listen_plus``
(a listen with more than 50% of the track played: the dataset card's "Listen+", MLPerf's ranking
task), ``like``, ``dislike``, ``unlike``, ``undislike`` and ``listen`` (any listen). Events of one
user on one item at the same timestamp become one event whose bitmask is the OR of theirs (a
like logged in the same 5-second step as its listen is one impression with two actions).

KuaiRand (Kuaishou, kuairand.com), the ``log_standard_*.csv`` files: one row per exposure with
``user_id``, ``video_id``, ``time_ms`` (unix milliseconds) and the 0/1 flags ``is_click``,
``is_like``, ``is_follow``, ``is_comment``, ``is_forward``, ``is_hate``, ``long_view``; the other
columns (``date``, ``hourmin``, ``play_time_ms``, ``duration_ms``, ...) are not read. Several
files are read in the order given, as one log. Every problem is one DataError naming the file
and its line (CSV) or row (Parquet).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import DataError
from scaling.data.readers import (
    FieldKind, LineFormat, RawInteractions, _check_readable, _line_of_data_row, _parse_delimited,
)
from scaling.data.sequences import SequenceDataset

YAMBDA_EVENT_TYPES = ("listen", "like", "dislike", "unlike", "undislike")
YAMBDA_TASKS = ("listen_plus", "like", "dislike", "unlike", "undislike", "listen")
LISTEN_PLUS_PERCENT = 50  # Yambda's card: a track counts as listened when over 50% of it is played
_YAMBDA_COLUMNS = ("uid", "item_id", "timestamp", "played_ratio_pct", "event_type")

KUAIRAND_FLAGS = ("is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view")
KUAIRAND_TASKS = ("click", "like", "follow", "comment", "forward", "hate", "long_view")
_KUAIRAND_IDS = ("user_id", "video_id", "time_ms")

# data.dataset -> the tasks its action bitmask encodes, bit k = task k
LOGGED_TASKS: dict[str, tuple[str, ...]] = {"yambda": YAMBDA_TASKS, "kuairand": KUAIRAND_TASKS}


def read_yambda(path: Path) -> RawInteractions:
    """Yambda's flat ``multi_event.parquet`` (see the module doc for the mapping)."""
    table = _read_yambda_table(path)
    event_type = _event_types(table.column("event_type"), path)
    played = table.column("played_ratio_pct")
    is_listen = event_type == 0
    missing = np.flatnonzero(is_listen & played.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        raise DataError(f"{path}: row {missing[0] + 1}: played_ratio_pct is missing (null) on a listen event")
    played_pct = played.fill_null(0).to_numpy().astype(np.float64)
    bits = np.zeros(len(event_type), dtype=np.int64)
    bits |= (is_listen & (played_pct > LISTEN_PLUS_PERCENT)).astype(np.int64) << YAMBDA_TASKS.index("listen_plus")
    for code, name in enumerate(YAMBDA_EVENT_TYPES[1:], start=1):
        bits |= (event_type == code).astype(np.int64) << YAMBDA_TASKS.index(name)
    bits |= is_listen.astype(np.int64) << YAMBDA_TASKS.index("listen")
    users, items, times = (table.column(name).to_numpy().astype(np.int64) for name in ("uid", "item_id", "timestamp"))
    return _merge_simultaneous(users, items, times, bits, (path,))


def read_kuairand(*paths: Path) -> RawInteractions:
    """KuaiRand ``log_standard_*.csv`` files, read in the order given as one log."""
    if not paths:
        raise DataError("kuairand: no log files given")
    parts = [_read_kuairand_log(path) for path in paths]
    users, items, times, bits = (np.concatenate(column) for column in zip(*parts))
    return RawInteractions(users, items, times, bits.astype(np.float32), tuple(paths))


def with_logged_actions(dataset: SequenceDataset, dataset_name: str) -> SequenceDataset:
    """``dataset`` with action tokens ``1 + bitmask`` and one label per task (unchanged for other datasets)."""
    tasks = LOGGED_TASKS.get(dataset_name)
    if tasks is None or dataset.ratings is None or dataset.has_actions:
        return dataset
    bits = dataset.ratings.astype(np.int64)
    labels = ((bits[:, None] >> np.arange(len(tasks))) & 1).astype(np.float32)
    return replace(dataset, action_tokens=bits + 1, num_action_tokens=1 << len(tasks), labels=labels, task_names=tasks)


# --- Yambda ---------------------------------------------------------------------------------------


def _read_yambda_table(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    _check_readable(path)
    try:
        names = pq.read_schema(path).names
        missing = [name for name in _YAMBDA_COLUMNS if name not in names]
        if missing:
            raise DataError(f"{path}: missing column {missing[0]!r}; Yambda's multi_event.parquet has "
                            f"{', '.join(_YAMBDA_COLUMNS)} (found: {', '.join(names) or 'none'})")
        table = pq.read_table(path, columns=list(_YAMBDA_COLUMNS))
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({str(error).splitlines()[0]})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no interactions (the table has no rows)")
    for name in ("uid", "item_id", "timestamp", "event_type"):
        column = table.column(name)
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        if nulls.any():
            raise DataError(f"{path}: row {np.flatnonzero(nulls)[0] + 1}: {name} is missing (null)")
        if name != "event_type" and not pa.types.is_integer(column.type):
            raise DataError(f"{path}: {name} column has type {column.type}; expected integers")
    return table


def _event_types(column: pa.ChunkedArray, path: Path) -> np.ndarray:
    """[E] index of each row's event_type in YAMBDA_EVENT_TYPES; an unknown type names its row."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataError(f"{path}: event_type column has type {column.type}; expected strings "
                        f"({', '.join(YAMBDA_EVENT_TYPES)})")
    codes = pc.index_in(column, value_set=pa.array(YAMBDA_EVENT_TYPES)).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(np.isnan(codes.astype(np.float64)))
    if len(unknown):
        row = int(unknown[0])
        raise DataError(f"{path}: row {row + 1}: event_type {column[row].as_py()!r} is not one of "
                        f"{', '.join(YAMBDA_EVENT_TYPES)}")
    return codes.astype(np.int64)


def _merge_simultaneous(users: np.ndarray, items: np.ndarray, times: np.ndarray, bits: np.ndarray,
                        sources: tuple[Path, ...]) -> RawInteractions:
    """One row per (user, item, timestamp), at its first row's place, with the OR of the rows' bitmasks."""
    keys = np.stack([users, items, times], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    merged = np.zeros(len(first), dtype=np.int64)
    np.bitwise_or.at(merged, inverse, bits)
    order = np.argsort(first, kind="stable")  # groups in the order of their first row
    rows = first[order]
    return RawInteractions(users[rows], items[rows], times[rows], merged[order].astype(np.float32), sources)


# --- KuaiRand -------------------------------------------------------------------------------------


def _read_kuairand_log(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, unix seconds, bitmask) of one log file."""
    _check_readable(path)
    with open(path, "rb") as file:
        header = tuple(field.decode("latin-1").strip() for field in file.readline().rstrip(b"\r\n").split(b","))
    missing = [name for name in (*_KUAIRAND_IDS, *KUAIRAND_FLAGS) if name not in header]
    if missing:
        raise DataError(f"{path}:1: missing column {missing[0]!r}; a KuaiRand log has "
                        f"{', '.join((*_KUAIRAND_IDS, *KUAIRAND_FLAGS))}, ... (found: {', '.join(header)})")
    wanted = {*_KUAIRAND_IDS, *KUAIRAND_FLAGS}
    kinds: dict[str, FieldKind] = {name: "int" if name in wanted else "ignored" for name in header}
    table = _parse_delimited(path, LineFormat(",", tuple(kinds.items()), header=header))
    bits = np.zeros(table.num_rows, dtype=np.int64)
    for bit, flag in enumerate(KUAIRAND_FLAGS):
        values = table.column(flag).to_numpy()
        bad = np.flatnonzero((values != 0) & (values != 1))
        if len(bad):
            line = _line_of_data_row(path, int(bad[0]))
            raise DataError(f"{path}:{line}: {flag} must be 0 or 1, got {int(values[bad[0]])}")
        bits |= values.astype(np.int64) << bit
    users, items = (table.column(name).to_numpy().astype(np.int64) for name in ("user_id", "video_id"))
    seconds = table.column("time_ms").to_numpy().astype(np.int64) // 1000
    return users, items, seconds, bits
