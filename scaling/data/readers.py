"""Raw interaction readers: one pure function per file format, each returning rows in file order.

Every reader returns :class:`RawInteractions` (users, items, timestamps, optional ratings),
one row per interaction in the order of the file. Parsing is vectorised (pyarrow) so that
ML-20M's 20M lines take seconds. When the fast parser rejects a file, or a value turns out
to be invalid (NaN, an empty id), the file is read once more as lines to find the first bad
one and raise a :class:`DataError` naming the file and its 1-based line, e.g.
``.../ratings.dat:1234: expected 4 fields separated by '::', got 3``. Nothing is skipped:
one bad line stops the load.

String ids (Amazon's ``A2...`` users, ``0000000116`` ASINs) are replaced by their rank in
sorted order of the raw strings, so ids stay integers and "sorted raw-id order" is the
lexicographic order of the originals.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from core.errors import DataError

# int: an integer; number: a finite float; text: a non-empty string id; ignored: any value, not read
FieldKind = Literal["int", "number", "text", "ignored"]

_INTEGER = re.compile(rb"\s*[+-]?\d+\s*")
# A byte that never occurs in MovieLens files, substituted for the two-byte '::' separator
# because pyarrow only splits on a single byte.
_UNIT_SEPARATOR = b"\x1f"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
# Floats at or beyond 2^63 in magnitude have no int64 value: numpy would cast them to INT64_MIN silently.
_FLOAT_INT64_LIMIT = float(1 << 63)
_UTF8_BOM = b"\xef\xbb\xbf"  # tolerated at the start of a header line (spreadsheet exports add it)


@dataclass(frozen=True)
class RawInteractions:
    """Interactions as read, one row each, in file order (nothing filtered or sorted)."""

    users: np.ndarray  # [E] int64 raw user ids (string ids: rank in sorted order)
    items: np.ndarray  # [E] int64 raw item ids (string ids: rank in sorted order)
    timestamps: np.ndarray  # [E] int64 or float64 seconds (or a synthetic clock)
    ratings: np.ndarray | None  # [E] float32 explicit rating / action value, if the source has one
    sources: tuple[Path, ...] = ()  # files read, for messages and fingerprints

    def __post_init__(self) -> None:
        sizes = {len(self.users), len(self.items), len(self.timestamps)}
        if self.ratings is not None:
            sizes.add(len(self.ratings))
        if len(sizes) != 1:
            raise ValueError(f"RawInteractions columns differ in length: {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class LineFormat:
    """How one delimited text format lays out a line, used by the fast parser and the line scanner."""

    separator: str  # as written in the file: "::", "\t", ","
    columns: tuple[tuple[str, FieldKind], ...]  # (name, kind) of every field, in order
    header: tuple[str, ...] | None = None  # the exact first line, split, when the format has one
    quoted: bool = False  # CSV quoting rules apply ("a,b" is one field)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


MOVIELENS_1M = LineFormat("::", (("user", "int"), ("item", "int"), ("rating", "number"), ("timestamp", "int")))
MOVIELENS_20M = LineFormat(
    ",",
    (("user", "int"), ("item", "int"), ("rating", "number"), ("timestamp", "int")),
    header=("userId", "movieId", "rating", "timestamp"),
)
MOVIELENS_100K = LineFormat("\t", (("user", "int"), ("item", "int"), ("rating", "number"), ("timestamp", "int")))
AMAZON_RATINGS = LineFormat(
    ",", (("user", "text"), ("item", "text"), ("rating", "number"), ("timestamp", "int")), quoted=True
)


def read_movielens_1m(path: Path) -> RawInteractions:
    """ML-1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp`` per line, no header."""
    return _interactions_from_table(_parse_delimited(path, MOVIELENS_1M), path)


def read_movielens_20m(path: Path) -> RawInteractions:
    """ML-20M ``ratings.csv``: header ``userId,movieId,rating,timestamp`` then one rating per line."""
    return _interactions_from_table(_parse_delimited(path, MOVIELENS_20M), path)


def read_movielens_100k(path: Path) -> RawInteractions:
    """ML-100K ``u.data``: tab-separated ``user item rating timestamp``, no header."""
    return _interactions_from_table(_parse_delimited(path, MOVIELENS_100K), path)


def read_amazon_ratings_csv(path: Path) -> RawInteractions:
    """Amazon (2014) ratings-only CSV ``user,item,rating,timestamp``, no header, string ids."""
    return _interactions_from_table(_parse_delimited(path, AMAZON_RATINGS), path)


def read_amazon_rank_pair(item_path: Path, time_path: Path) -> RawInteractions:
    """The line-aligned ``<Name>_item_org_rank.txt`` / ``<Name>_time_org_rank.txt`` pair.

    Line ``k`` of the item file is ``user item_1 item_2 ...`` and line ``k`` of the time file
    ``user t_1 t_2 ...`` for the same user with as many timestamps as items; any disagreement
    is reported with both files' line. Items are returned in the order the file lists them.
    """
    item_rows = _read_id_lists(item_path, "item id")
    time_rows = _read_id_lists(time_path, "timestamp")
    if len(item_rows) != len(time_rows):
        raise DataError(
            f"{time_path}: has {len(time_rows)} non-empty lines but {item_path} has {len(item_rows)}; "
            "the two files must be line-aligned (one line per user in each)"
        )
    for (item_line, item_user, items), (time_line, time_user, times) in zip(item_rows, time_rows):
        if item_user != time_user:
            raise DataError(
                f"{time_path}:{time_line}: user {time_user}, but {item_path}:{item_line} is user {item_user}; "
                "the two files must list the same user on the same line"
            )
        if len(items) != len(times):
            raise DataError(
                f"{time_path}:{time_line}: user {time_user} has {len(times)} timestamps but "
                f"{item_path}:{item_line} lists {len(items)} items"
            )
    lengths = np.array([len(items) for _, _, items in item_rows], dtype=np.int64)
    users = np.repeat(np.array([user for _, user, _ in item_rows], dtype=np.int64), lengths)
    items = np.fromiter((i for _, _, row in item_rows for i in row), dtype=np.int64, count=int(lengths.sum()))
    times = np.fromiter((t for _, _, row in time_rows for t in row), dtype=np.int64, count=int(lengths.sum()))
    return RawInteractions(users, items, times, None, (item_path, time_path))


def read_interaction_table(path: Path) -> RawInteractions:
    """A generic ``.csv`` (with a header) or ``.parquet`` file with columns user, item, timestamp.

    An optional ``rating`` or ``action`` column is carried as the rating. Ids may be integers
    or strings (strings are ranked in sorted order); timestamps must be numbers.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_generic_csv(path)
    raise DataError(f"{path}: data.dataset 'csv' reads .csv or .parquet files; got a '{suffix or 'no'}' suffix")


# --- delimited text -------------------------------------------------------------------------------


def _parse_delimited(path: Path, fmt: LineFormat) -> pa.Table:
    """Parse ``path`` with pyarrow; on any problem, raise the first bad line as a DataError."""
    _check_readable(path)
    if fmt.header is not None:
        _check_header(path, fmt)
    wanted = [name for name, kind in fmt.columns if kind != "ignored"]
    try:
        table = pa_csv.read_csv(
            _arrow_source(path, fmt),
            read_options=pa_csv.ReadOptions(
                column_names=fmt.names, skip_rows=1 if fmt.header else 0, block_size=1 << 24
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=_arrow_delimiter(fmt), quote_char='"' if fmt.quoted else False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: _ARROW_TYPES[kind] for name, kind in fmt.columns if kind != "ignored"},
                include_columns=wanted,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise _located_error(path, fmt, str(error)) from None
    if table.num_rows == 0:
        content = "only a header" if fmt.header else "only blank lines"
        raise DataError(f"{path}: no interactions (the file has {content})")
    if not all(_column_valid(table.column(name), kind) for name, kind in fmt.columns if kind != "ignored"):
        raise _located_error(path, fmt, "a non-finite number or an empty id")
    return table


def _arrow_delimiter(fmt: LineFormat) -> str:
    return _UNIT_SEPARATOR.decode() if fmt.separator == "::" else fmt.separator


def _column_valid(column: pa.ChunkedArray, kind: FieldKind) -> bool:
    """What the parser lets through but the format forbids: NaN/inf numbers and empty ids."""
    if kind == "number":
        return bool(np.isfinite(column.to_numpy()).all())
    if kind == "text":
        return not pc.any(pc.equal(pc.binary_length(column), 0)).as_py()
    return True


_ARROW_TYPES: dict[str, pa.DataType] = {"int": pa.int64(), "number": pa.float64(), "text": pa.binary()}


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: cannot be read (permission denied); check the file's permissions")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _check_header(path: Path, fmt: LineFormat) -> None:
    """Check the first line of ``path`` against ``fmt.header``."""
    with open(path, "rb") as file:
        first = file.readline().removeprefix(_UTF8_BOM)
    found = tuple(field.decode("latin-1").strip() for field in _split_fields(first.rstrip(b"\r\n"), fmt))
    if found != fmt.header:
        expected = fmt.separator.join(fmt.header)
        raise DataError(f"{path}:1: expected the header '{expected}', got '{first.decode('latin-1').rstrip()}'")


def _arrow_source(path: Path, fmt: LineFormat) -> str | io.BytesIO:
    """What pyarrow reads: the path itself, or the bytes with '::' turned into one separator byte."""
    if fmt.separator != "::":
        return str(path)
    return io.BytesIO(path.read_bytes().replace(b"::", _UNIT_SEPARATOR))


def _located_error(path: Path, fmt: LineFormat, parser_message: str) -> DataError:
    """The first bad line of ``path`` as a DataError (the parser's message if no line is found)."""
    problem = _first_bad_line(path, fmt)
    if problem is not None:
        return DataError(problem)
    return DataError(f"{path}: could not be parsed as {_describe(fmt)} ({parser_message.splitlines()[0]})")


def _first_bad_line(path: Path, fmt: LineFormat) -> str | None:
    """Describe the first malformed line of ``path`` as ``file:line: problem`` (None if none is found).

    A vectorised pass matches every line against the format's regular expression (seconds for
    ML-20M's 20M lines, where a Python loop takes minutes); the lines it flags are then checked
    exactly, in order. The pattern never accepts a line the exact check rejects, so when it flags
    nothing real there is no line-level problem. Only files it cannot read as lines at all are
    scanned in Python.
    """
    suspects = _suspect_lines(path, fmt)
    candidates = suspects if suspects is not None else _numbered_lines(path, first=2 if fmt.header else 1)
    for line_number, line in candidates:
        problem = _line_problem(line, fmt)
        if problem is not None:
            return f"{path}:{line_number}: {problem}"
    return None


_MAX_SUSPECTS = 10_000
def _suspect_lines(path: Path, fmt: LineFormat) -> list[tuple[int, bytes]] | None:
    """(line number, line) of the first lines not matching ``fmt``'s pattern; None if unreadable as lines."""
    try:
        lines = pa_csv.read_csv(
            str(path),
            read_options=pa_csv.ReadOptions(column_names=["line"], block_size=1 << 24),
            parse_options=pa_csv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={"line": pa.binary()}),
        ).column("line")
    except pa.ArrowInvalid:  # e.g. a line holding the 0x1f byte used as the (absent) delimiter
        return None
    matches = pc.or_(pc.match_substring_regex(lines, _line_pattern(fmt)), pc.equal(pc.binary_length(lines), 0))
    flagged = np.flatnonzero(~matches.to_numpy(zero_copy_only=False))
    if fmt.header is not None:
        flagged = flagged[flagged > 0]
    return [(int(row) + 1, lines[int(row)].as_py()) for row in flagged[:_MAX_SUSPECTS]]


def _line_pattern(fmt: LineFormat) -> str:
    """An RE2 pattern for one well-formed line of ``fmt`` (a superset test: see _first_bad_line)."""
    separator = re.escape(fmt.separator)
    if fmt.quoted:
        text, anything = r'(?:"(?:[^"]|"")+"|[^,"]+)', r'(?:"(?:[^"]|"")*"|[^,"]*)'
    elif len(fmt.separator) == 1:
        text, anything = f"[^{separator}]+", f"[^{separator}]*"
    else:
        text, anything = ".+?", ".*?"
    # spaces only around numbers: a wider class could swallow a tab separator
    fields = {
        "int": r" *[+-]?\d{1,18} *",  # 19 digits or more may overflow int64: checked exactly
        "number": r" *[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)? *",
        "text": text,
        "ignored": anything,
    }
    return "^" + separator.join(fields[kind] for _, kind in fmt.columns) + "$"


def _numbered_lines(path: Path, first: int) -> Iterator[tuple[int, bytes]]:
    """(1-based number, line without its end) of every non-empty line from line ``first`` on."""
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, start=1):
            line = line.rstrip(b"\r\n")
            if line_number >= first and line:
                yield line_number, line


def _line_problem(line: bytes, fmt: LineFormat) -> str | None:
    """What is wrong with one line of ``fmt`` (None if nothing), checked field by field."""
    try:
        fields = _split_fields(line, fmt)
    except csv.Error as error:
        return f"not a valid CSV line ({error})"
    if len(fields) != len(fmt.columns):
        return f"expected {len(fmt.columns)} fields separated by {fmt.separator!r}, got {len(fields)}"
    for (name, kind), value in zip(fmt.columns, fields):
        problem = _field_problem(name, kind, value)
        if problem is not None:
            return problem
    return None


def _split_fields(line: bytes, fmt: LineFormat) -> list[bytes]:
    if fmt.quoted:
        reader = csv.reader([line.decode("latin-1")], delimiter=fmt.separator, strict=True)
        return [field.encode("latin-1") for field in next(reader, [])]
    return line.split(fmt.separator.encode())


def _field_problem(name: str, kind: FieldKind, value: bytes) -> str | None:
    shown = value.decode("latin-1")
    if kind == "int" and not _INTEGER.fullmatch(value):
        what = "an integer id" if name in ("user", "item") else "an integer (unix seconds)"
        return f"{name} must be {what}, got {shown!r}"
    if kind == "int" and not _INT64_MIN <= int(value) <= _INT64_MAX:
        return f"{name} {shown.strip()} is out of range (a 64-bit integer is at most {_INT64_MAX:,} in magnitude)"
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return f"{name} must be a number, got {shown!r}"
        if not math.isfinite(number) or b"_" in value:
            return f"{name} must be a finite number, got {shown!r}"
    if kind == "text" and not value:
        return f"{name} id is empty"
    return None


def _describe(fmt: LineFormat) -> str:
    return f"{len(fmt.columns)} fields ({', '.join(fmt.names)}) separated by {fmt.separator!r}"


def _interactions_from_table(table: pa.Table, path: Path) -> RawInteractions:
    return RawInteractions(
        users=_id_column(table.column("user")),
        items=_id_column(table.column("item")),
        timestamps=table.column("timestamp").to_numpy(),
        ratings=table.column("rating").to_numpy().astype(np.float32) if "rating" in table.column_names else None,
        sources=(path,),
    )


def _id_column(column: pa.ChunkedArray) -> np.ndarray:
    """Integer ids as int64; binary/string ids as their rank among the sorted distinct strings."""
    if pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.int64, copy=False)
    return rank_strings(column)


def rank_strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """[E] int64 rank of each value among the distinct values in sorted (byte-wise) order."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = array.dictionary_encode()
    order = pc.sort_indices(encoded.dictionary).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[encoded.indices.to_numpy()]


# --- whitespace-separated id lists (TiCoSeRec Amazon files) -----------------------------------------


def _read_id_lists(path: Path, what: str) -> list[tuple[int, int, list[int]]]:
    """(line number, user, values) for each non-empty line ``user v_1 v_2 ...`` of ``path``."""
    _check_readable(path)
    rows: list[tuple[int, int, list[int]]] = []
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DataError(
                    f"{path}:{line_number}: expected a user id followed by at least one {what}, got 1 field"
                )
            try:
                values = [int(field) for field in fields]
            except ValueError:
                bad = next(f for f in fields if not _INTEGER.fullmatch(f)).decode("latin-1")
                role = "user id" if not _INTEGER.fullmatch(fields[0]) else what
                raise DataError(f"{path}:{line_number}: {role} must be an integer, got {bad!r}") from None
            out_of_range = [v for v in values if not _INT64_MIN <= v <= _INT64_MAX]
            if out_of_range:
                role = "user id" if out_of_range[0] == values[0] else what
                raise DataError(f"{path}:{line_number}: {role} {out_of_range[0]} is out of range (a 64-bit integer "
                                f"is at most {_INT64_MAX:,} in magnitude)")
            rows.append((line_number, values[0], values[1:]))
    if not rows:
        raise DataError(f"{path}: no interactions (the file has only blank lines)")
    return rows


# --- generic CSV / Parquet ------------------------------------------------------------------------

_REQUIRED_COLUMNS = ("user", "item", "timestamp")
_RATING_COLUMNS = ("rating", "action")


def _read_generic_csv(path: Path) -> RawInteractions:
    _check_readable(path)
    with open(path, "rb") as file:
        first_line = file.readline().removeprefix(_UTF8_BOM).rstrip(b"\r\n")
    header = [field.decode("latin-1").strip() for field in _split_fields(first_line, _CSV_PROBE)]
    rating_column = _pick_columns(path, header)
    kinds: dict[str, FieldKind] = {"user": "text", "item": "text", "timestamp": "number"}
    if rating_column is not None:
        kinds[rating_column] = "number"
    columns = tuple((name, kinds.get(name, "ignored")) for name in header)
    table = _parse_delimited(path, LineFormat(",", columns, header=tuple(header), quoted=True))
    # every line-level problem was caught by the parser and its line scanner; what is left
    # (a column of an unexpected type) has no single line to point at
    return _table_interactions(table, path, rating_column, lambda row: f"{path}:{_line_of_data_row(path, row)}")


_CSV_PROBE = LineFormat(",", (), quoted=True)


def _line_of_data_row(path: Path, row: int) -> int:
    """1-based line of the 0-based data ``row`` of a CSV with a header (blank lines skipped, as the parser does)."""
    for number, (line_number, _) in enumerate(_numbered_lines(path, first=2)):
        if number == row:
            return line_number
    return row + 2


def _read_parquet(path: Path) -> RawInteractions:
    import pyarrow.parquet as pq

    _check_readable(path)
    try:
        schema = pq.read_schema(path)
        rating_column = _pick_columns(path, schema.names)
        columns = [*_REQUIRED_COLUMNS, *([rating_column] if rating_column else [])]
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({str(error).splitlines()[0]})") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: no interactions (the table has no rows)")
    for name in columns:
        nulls = table.column(name).is_null()
        if pc.any(nulls).as_py():
            row = int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: row {row + 1}: {name} is missing (null)")
    return _table_interactions(table, path, rating_column, lambda row: f"{path}: row {row + 1}")


def _pick_columns(path: Path, names: list[str]) -> str | None:
    """Check the required columns are present; return the rating column's name, if any."""
    missing = [name for name in _REQUIRED_COLUMNS if name not in names]
    if missing:
        raise DataError(
            f"{path}: missing column {missing[0]!r}; expected user, item, timestamp and optionally rating or action "
            f"(found: {', '.join(names) or 'none'})"
        )
    ratings = [name for name in _RATING_COLUMNS if name in names]
    if len(ratings) > 1:
        raise DataError(f"{path}: has both 'rating' and 'action' columns; keep the one to use as the rating")
    return ratings[0] if ratings else None


def _table_interactions(
    table: pa.Table, path: Path, rating_column: str | None, locate_row: Callable[[int], str]
) -> RawInteractions:
    """Ids (ints or ranked strings), numeric timestamps and ratings from a parsed table."""
    users = _flexible_ids(table.column("user"), "user", locate_row)
    items = _flexible_ids(table.column("item"), "item", locate_row)
    timestamps = _numeric_column(table.column("timestamp"), "timestamp", locate_row)
    if np.issubdtype(timestamps.dtype, np.floating):
        _require_int64_range(timestamps, "timestamp", locate_row)
    if np.issubdtype(timestamps.dtype, np.floating) and np.array_equal(timestamps, np.floor(timestamps)):
        timestamps = timestamps.astype(np.int64)
    ratings = None
    if rating_column is not None:
        ratings = _numeric_column(table.column(rating_column), rating_column, locate_row).astype(np.float32)
    return RawInteractions(users, items, timestamps, ratings, (path,))


def _flexible_ids(column: pa.ChunkedArray, name: str, locate_row: Callable[[int], str]) -> np.ndarray:
    """int64 ids from an integer, integral-float or string column (strings: int if all parse, else ranked)."""
    if pa.types.is_dictionary(column.type):  # e.g. a pandas categorical written to Parquet
        column = pc.cast(column, column.type.value_type)
    kind = column.type
    if pa.types.is_integer(kind):
        return column.to_numpy().astype(np.int64)
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.floor(values)))
        if len(bad):
            shown = float(values[bad[0]])
            raise DataError(f"{locate_row(int(bad[0]))}: {name} id must be an integer or a string, got {shown!r}")
        _require_int64_range(values, f"{name} id", locate_row)
        return values.astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        try:
            return pc.cast(column, pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return rank_strings(column)
    raise DataError(f"{locate_row(0)}: {name} column has type {kind}; expected integer or string ids")


def _require_int64_range(values: np.ndarray, name: str, locate_row: Callable[[int], str]) -> None:
    """Refuse floats a cast to int64 would wrap (1e19 becomes INT64_MIN), naming the first one's row."""
    bad = np.flatnonzero(np.abs(values) >= _FLOAT_INT64_LIMIT)
    if len(bad):
        raise DataError(f"{locate_row(int(bad[0]))}: {name} {float(values[bad[0]])!r} is out of range "
                        f"(at most {_FLOAT_INT64_LIMIT:.3g} in magnitude; unix seconds are about 1.7e9)")


def _numeric_column(column: pa.ChunkedArray, name: str, locate_row: Callable[[int], str]) -> np.ndarray:
    """Numbers as int64/float64 (Parquet timestamp columns as unix seconds); NaN/inf rejected."""
    if pa.types.is_timestamp(column.type):
        ticks_per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[column.type.unit]
        ticks = pc.cast(column, pa.int64()).to_numpy()
        return ticks if ticks_per_second == 1 else ticks / ticks_per_second
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        raise DataError(f"{locate_row(0)}: {name} column has type {column.type}; expected numbers")
    values = column.to_numpy()
    if np.issubdtype(values.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            shown = float(values[bad[0]])
            raise DataError(f"{locate_row(int(bad[0]))}: {name} must be a finite number, got {shown!r}")
    return values
