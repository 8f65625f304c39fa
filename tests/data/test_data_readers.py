"""Each reader parses its official format in file order and names the file and line of bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reader_fixtures import error_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaling.data.readers import (
    AMAZON_RATINGS,
    MOVIELENS_1M,
    MOVIELENS_20M,
    MOVIELENS_100K,
    LineFormat,
    _first_bad_line,
    _line_problem,
    _numbered_lines,
    read_amazon_rank_pair,
    read_amazon_ratings_csv,
    read_interaction_table,
    read_movielens_1m,
    read_movielens_20m,
    read_movielens_100k,
)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path




# --- the official formats -------------------------------------------------------------------------


def test_movielens_1m_ratings_dat(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n6040::1097::4::956715648\n")
    raw = read_movielens_1m(path)
    assert raw.users.tolist() == [1, 1, 6040]
    assert raw.items.tolist() == [1193, 661, 1097]
    assert raw.timestamps.tolist() == [978300760, 978302109, 956715648]
    assert raw.ratings.tolist() == [5.0, 3.0, 4.0]
    assert raw.sources == (path,)


def test_movielens_20m_ratings_csv_with_header_and_half_stars(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n138493,131262,0.5,1427784002\n",
    )
    raw = read_movielens_20m(path)
    assert raw.users.tolist() == [1, 1, 138493]
    assert raw.items.tolist() == [2, 29, 131262]
    assert raw.ratings.tolist() == [3.5, 3.5, 0.5]
    assert raw.timestamps.dtype == np.int64


def test_movielens_100k_u_data_with_crlf_and_no_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\r\n186\t302\t3\t891717742")
    raw = read_movielens_100k(path)
    assert raw.users.tolist() == [196, 186]
    assert raw.timestamps.tolist() == [881250949, 891717742]


def test_amazon_ratings_csv_ranks_string_ids_in_sorted_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings_Books.csv",
        "AH2L9G3DQHHAJ,0000000116,4.0,1019865600\n"
        "A2IIIDRK3PRRZY,0000000116,1.0,1395619200\n"
        "A1TADCM7YWPQ8M,0000000868,4.0,1031702400\n"
        "AH2L9G3DQHHAJ,000000013X,5.0,1031702400\n",
    )
    raw = read_amazon_ratings_csv(path)
    # users sorted: A1TADCM7YWPQ8M < A2IIIDRK3PRRZY < AH2L9G3DQHHAJ
    assert raw.users.tolist() == [2, 1, 0, 2]
    # items sorted as strings, leading zeros kept: 0000000116 < 000000013X < 0000000868
    assert raw.items.tolist() == [0, 0, 2, 1]
    assert raw.ratings.tolist() == [4.0, 1.0, 4.0, 5.0]
    assert raw.timestamps.tolist()[0] == 1019865600


def test_amazon_rank_pair_keeps_file_order(tmp_path: Path) -> None:
    items = write(tmp_path / "Beauty_item_org_rank.txt", "1 7 3 9\n2 3 5\n")
    times = write(tmp_path / "Beauty_time_org_rank.txt", "1 100 100 200\n2 50 60\n")
    raw = read_amazon_rank_pair(items, times)
    assert raw.users.tolist() == [1, 1, 1, 2, 2]
    assert raw.items.tolist() == [7, 3, 9, 3, 5]
    assert raw.timestamps.tolist() == [100, 100, 200, 50, 60]
    assert raw.ratings is None


def test_generic_csv_with_string_ids_extra_columns_and_action(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        'user,item,timestamp,action,comment\nu2,"b,1",10.5,1,"ok"\nu1,a,3,0,\nu2,a,11,2,x\n',
    )
    raw = read_interaction_table(path)
    assert raw.users.tolist() == [1, 0, 1]
    assert raw.items.tolist() == [1, 0, 0]  # "a" < "b,1"
    assert raw.timestamps.tolist() == [10.5, 3.0, 11.0]
    assert raw.ratings.tolist() == [1.0, 0.0, 2.0]


def test_generic_csv_integer_ids_stay_integers(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "item,user,timestamp\n10,7,1\n2,7,2\n")
    raw = read_interaction_table(path)
    assert raw.users.tolist() == [7, 7]
    assert raw.items.tolist() == [10, 2]  # numeric, not string order
    assert raw.timestamps.dtype == np.int64
    assert raw.ratings is None


def test_generic_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    table = pa.table({"user": ["x", "y", "x"], "item": [5, 3, 5], "timestamp": [3, 2, 1], "rating": [1.0, 2.0, 3.0]})
    pq.write_table(table, path)
    raw = read_interaction_table(path)
    assert raw.users.tolist() == [0, 1, 0]
    assert raw.items.tolist() == [5, 3, 5]
    assert raw.ratings.tolist() == [1.0, 2.0, 3.0]


def test_generic_parquet_with_datetime_timestamps_and_categorical_ids(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "log.parquet"
    frame = pd.DataFrame(
        {
            "user": pd.Categorical(["b", "a", "b"]),
            "item": [7, 8, 7],
            "timestamp": pd.to_datetime(
                ["2020-01-01 00:00:01.5", "1970-01-01 00:00:10", "2020-01-01"], format="ISO8601"
            ),
        }
    )
    frame.to_parquet(path)
    raw = read_interaction_table(path)
    assert raw.users.tolist() == [1, 0, 1]
    assert raw.timestamps.tolist() == [1577836801.5, 10.0, 1577836800.0]


def test_generic_csv_tolerates_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbfuser,item,timestamp\n1,2,3\n")
    assert read_interaction_table(path).items.tolist() == [2]


# --- bad input: one line naming the file and the 1-based line -----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1::2::3::4\n1::2::3\n", r"ratings\.dat:2: expected 4 fields separated by '::', got 3$"),
        ("1::2::3::4\n1::2::3::4::5\n", r"ratings\.dat:2: expected 4 fields separated by '::', got 5$"),
        ("1::2::3::4\n\n7::x::3::4\n", r"ratings\.dat:3: item must be an integer id, got 'x'$"),
        ("1.5::2::3::4\n", r"ratings\.dat:1: user must be an integer id, got '1.5'$"),
        ("1::2::3::4\n1::2::3::soon\n", r"ratings\.dat:2: timestamp must be an integer \(unix seconds\), got 'soon'$"),
        ("1::2::five::4\n", r"ratings\.dat:1: rating must be a number, got 'five'$"),
        ("1::2::nan::4\n", r"ratings\.dat:1: rating must be a finite number, got 'nan'$"),
        ("1::::3::4\n", r"ratings\.dat:1: item must be an integer id, got ''$"),
    ],
)
def test_movielens_1m_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(read_movielens_1m, write(tmp_path / "ratings.dat", text))
    assert message.startswith(str(tmp_path))
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,3.5\n",
            r"ratings\.csv:3: expected 4 fields separated by ',', got 3$",
        ),
        ("userId,movieId,rating\n1,2,3\n", r"ratings\.csv:1: expected the header 'userId,movieId,rating,timestamp'"),
        ("1,2,3.5,4\n", r"ratings\.csv:1: expected the header"),
        ("userId,movieId,rating,timestamp\n", r"ratings\.csv: no interactions \(the file has only a header\)$"),
        ("userId,movieId,rating,timestamp\n1,2,3.5,4.25\n", r"ratings\.csv:2: timestamp must be an integer"),
    ],
)
def test_movielens_20m_errors(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(read_movielens_20m, write(tmp_path / "ratings.csv", text))
    assert re.search(expected, message), message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert error_of(read_movielens_100k, tmp_path / "u.data") == f"{tmp_path / 'u.data'}: no such file"
    assert error_of(read_movielens_100k, write(tmp_path / "u.data", "")) == f"{tmp_path / 'u.data'}: file is empty"
    blank = write(tmp_path / "blank.dat", "\n\n")
    assert "no interactions" in error_of(read_movielens_1m, blank)


def test_error_line_is_found_deep_in_a_large_file(tmp_path: Path) -> None:
    good = "".join(f"{u}\t{u % 97 + 1}\t3\t{880000000 + u}\n" for u in range(1, 50_001))
    path = write(tmp_path / "u.data", good + "50001\t5\t3\n" + good)
    assert error_of(read_movielens_100k, path).endswith("u.data:50001: expected 4 fields separated by '\\t', got 3")


def test_amazon_ratings_csv_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "A1,0001,5.0,1000\nA2,0002,5.0\n")
    assert error_of(read_amazon_ratings_csv, path).endswith("r.csv:2: expected 4 fields separated by ',', got 3")
    path = write(tmp_path / "r.csv", "A1,0001,5.0,1000\n,0002,5.0,1000\n")
    assert error_of(read_amazon_ratings_csv, path).endswith("r.csv:2: user id is empty")
    path = write(tmp_path / "r.csv", "A1,0001,5.0,1000\nA1,0002,5.0,yesterday\n")
    expected = "r.csv:2: timestamp must be an integer (unix seconds), got 'yesterday'"
    assert error_of(read_amazon_ratings_csv, path).endswith(expected)


def test_rank_pair_disagreements_are_located_in_both_files(tmp_path: Path) -> None:
    items = write(tmp_path / "X_item_org_rank.txt", "1 7 3\n2 3 5\n")
    times = write(tmp_path / "X_time_org_rank.txt", "1 100 100\n2 50\n")
    message = error_of(read_amazon_rank_pair, items, times)
    assert message == (
        f"{times}:2: user 2 has 1 timestamps but {items}:2 lists 2 items"
    )
    write(times, "1 100 100\n3 50 60\n")
    assert error_of(read_amazon_rank_pair, items, times) == (
        f"{times}:2: user 3, but {items}:2 is user 2; the two files must list the same user on the same line"
    )
    write(times, "1 100 100\n")
    assert "has 1 non-empty lines but" in error_of(read_amazon_rank_pair, items, times)
    write(times, "1 100 1e5\n2 50 60\n")
    assert error_of(read_amazon_rank_pair, items, times) == f"{times}:1: timestamp must be an integer, got '1e5'"
    write(items, "1\n")
    assert error_of(read_amazon_rank_pair, items, times).startswith(f"{items}:1: expected a user id followed by")


def test_generic_table_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,time\n1,2,3\n")
    assert "missing column 'timestamp'" in error_of(read_interaction_table, path)
    path = write(tmp_path / "log.csv", "user,item,timestamp\n1,2,3\n1,2,later\n")
    assert error_of(read_interaction_table, path).endswith("log.csv:3: timestamp must be a number, got 'later'")
    path = write(tmp_path / "log.csv", "user,item,timestamp,rating,action\n1,2,3,4,5\n")
    assert "both 'rating' and 'action'" in error_of(read_interaction_table, path)
    path = write(tmp_path / "log.json", "{}")
    assert "reads .csv or .parquet files" in error_of(read_interaction_table, path)
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [1, None], "item": [1, 2], "timestamp": [1, 2]}), parquet)
    assert error_of(read_interaction_table, parquet) == f"{parquet}: row 2: user is missing (null)"
    pq.write_table(pa.table({"user": [1.0, 2.5], "item": [1, 2], "timestamp": [1, 2]}), parquet)
    assert error_of(read_interaction_table, parquet).endswith("row 2: user id must be an integer or a string, got 2.5")
    write(parquet, "not parquet")
    assert "not a readable Parquet file" in error_of(read_interaction_table, parquet)


# --- the vectorised line check finds the same first bad line as a plain line-by-line scan -------

FIELD_TEXT = st.text(alphabet="0123456789-+. eEnaAx,\"\t:\f\x0b_", max_size=6)


def scanned_first_problem(path: Path, fmt: LineFormat) -> str | None:
    """The reference: every line checked in Python, in order."""
    for line_number, line in _numbered_lines(path, first=2 if fmt.header else 1):
        problem = _line_problem(line, fmt)
        if problem is not None:
            return f"{path}:{line_number}: {problem}"
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from([MOVIELENS_1M, MOVIELENS_20M, MOVIELENS_100K, AMAZON_RATINGS]),
    rows=st.lists(st.lists(FIELD_TEXT, min_size=3, max_size=5), min_size=1, max_size=8),
    good_rows=st.integers(0, 3),
)
def test_vectorised_line_check_agrees_with_a_line_scan(
    tmp_path: Path, fmt: LineFormat, rows: list[list[str]], good_rows: int
) -> None:
    separator = fmt.separator
    lines = [separator.join(["1", "2", "3.5", "4"])] * good_rows + [separator.join(row) for row in rows]
    if fmt.header is not None:
        lines.insert(0, ",".join(fmt.header))
    path = tmp_path / "ratings.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    assert _first_bad_line(path, fmt) == scanned_first_problem(path, fmt)


def test_lines_unreadable_by_the_vectorised_pass_fall_back_to_a_scan(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\t4\n5\x1f\t6\t7\t8\n")
    assert error_of(read_movielens_100k, path).endswith("u.data:2: user must be an integer id, got '5\\x1f'")
