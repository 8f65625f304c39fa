"""``scaling data stats`` prints the counts of the configured dataset, and bad data as one line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from scaling.commands import data as data_command
from core.errors import DataError, UserError


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


class Loaded(Exception):
    """Raised by the stand-in loader with the DataConfig it was asked for."""


def capture_data_config(monkeypatch: pytest.MonkeyPatch, *argv: str):
    import scaling.data.loading

    def stand_in(config):
        raise Loaded(config)

    monkeypatch.setattr(scaling.data.loading, "load_dataset", stand_in)
    with pytest.raises(Loaded) as loaded:
        data_command.run(parse("stats", *argv))
    return loaded.value.args[0]


def test_bare_stats_loads_a_small_synthetic_stream_and_paper_size_is_one_flag_away(monkeypatch, capsys) -> None:
    from scaling.config import DataConfig

    small = capture_data_config(monkeypatch)
    assert (small.dataset, small.synthetic_dp.num_records, small.synthetic_industrial.num_users) == ("synthetic-dp", 20_000, 10_000)
    assert "loading synthetic-dp: 20,000 records of 128 items" in capsys.readouterr().out
    assert capture_data_config(monkeypatch, "--size", "paper") == DataConfig()  # the run config's own defaults
    overridden = capture_data_config(monkeypatch, "--set", "data.synthetic_dp.num_records=500")
    assert overridden.synthetic_dp.num_records == 500  # --set wins over the preset


def test_a_config_file_is_never_resized(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("data: {synthetic_dp: {num_records: 3000}}\n")
    assert capture_data_config(monkeypatch, str(config)).synthetic_dp.num_records == 3000
    with pytest.raises(UserError, match=r"^--size sizes the built-in defaults; with a config file \(.*run.yaml\) use --set instead$"):
        data_command.run(parse("stats", str(config), "--size", "small"))
