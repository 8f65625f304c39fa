"""``scaling data stats`` prints the counts of the configured dataset, and bad data as one line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from scaling.commands import data as data_command
from core.errors import DataError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    data_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_stats_prints_counts_and_length_percentiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "u.data"
    source.write_text("".join(f"{u}\t{i}\t3\t{100 + i}\n" for u in (1, 2) for i in range(1, 2 + 3 * u)))
    args = parse(
        "stats",
        "--set", "data.dataset=ml-100k",
        "--set", f"data.path={source}",
        "--set", f"data.cache_dir={tmp_path / 'cache'}",
        "--set", "data.max_seq_len=5",
    )  # fmt: skip
    assert data_command.run(args) == 0
    out = capsys.readouterr().out
    for expected in (r"users\s+2", r"items\s+7", r"interactions\s+11", r"history length\s+min 4 \| .* \| max 7 \|"):
        assert re.search(f"^{expected}", out, flags=re.MULTILINE), out
    assert re.search(r"^longer than 5\s+1 users \(50\.0%\)", out, flags=re.MULTILINE), out


def test_stats_on_missing_data_raises_the_one_line_error(tmp_path: Path) -> None:
    args = parse(
        "stats", "--set", "data.dataset=ml-20m", "--set", "data.download=false", "--set", f"data.cache_dir={tmp_path}"
    )
    with pytest.raises(DataError, match="^ml-20m not found: put ratings.csv in "):
        data_command.run(args)
