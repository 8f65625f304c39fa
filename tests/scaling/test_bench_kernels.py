"""`scaling bench kernels`: the resource table, its exit status and CSV, the interpreter error, and
the launch specialisation the survey compiles with (the compilation itself: tests/kernels/test_compile.py)."""

from __future__ import annotations

import csv

import pytest

from scaling import cli
from scaling.benchmarks import kernel_resources
from scaling.benchmarks.kernel_resources import COLUMNS, KernelResources


def resources(config: str, spill_loads: int = 0, shared_bytes: int = 50_000) -> KernelResources:
    return KernelResources(kernel="forward", activation="silu", config=config, target="sm_90", dtype="bf16",
                           registers=255 if spill_loads else 180, spill_stores=spill_loads, spill_loads=spill_loads,
                           shared_bytes=shared_bytes, shared_limit=232448, wgmma=True)


def test_a_row_fits_only_without_spills_and_within_shared_memory() -> None:
    assert resources("128x64/w8/s3").fits
    assert not resources("128x64/w8/s3", spill_loads=4).fits
    assert not resources("128x64/w8/s3", shared_bytes=232449).fits


def stub_survey(monkeypatch, rows: list[KernelResources]) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)

    def survey(kernels, targets, dtypes, activations, features, progress):
        for row in rows:
            progress(row)
        return rows

    monkeypatch.setattr(kernel_resources, "survey", survey)


def test_the_table_has_every_column_and_a_spill_fails_the_command(monkeypatch, capsys) -> None:
    stub_survey(monkeypatch, [resources("128x64/w8/s3"), resources("128x128/w8/s2", spill_loads=304)])
    assert cli.main(["bench", "kernels"]) == 1
    output = capsys.readouterr().out
    assert all(column in output for column in COLUMNS)
    assert "128x128/w8/s2" in output and "1 of 2 configurations spill" in output


def test_when_every_config_fits_it_exits_0_and_writes_the_csv(monkeypatch, tmp_path, capsys) -> None:
    stub_survey(monkeypatch, [resources("128x64/w8/s3"), resources("64x64/w4/s3")])
    path = tmp_path / "kernels.csv"
    assert cli.main(["bench", "kernels", "--csv", str(path)]) == 0
    assert "all 2 configurations fit" in capsys.readouterr().out
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["config"] for row in rows] == ["128x64/w8/s3", "64x64/w4/s3"]
    assert tuple(rows[0]) == COLUMNS and rows[0]["spill_loads"] == "0"


def test_under_the_interpreter_it_refuses_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert cli.main(["bench", "kernels"]) == 2
    error = capsys.readouterr().err.strip()
    assert "TRITON_INTERPRET" in error and "\n" not in error


def test_the_survey_compiles_what_a_launch_compiles() -> None:
    pytest.importorskip("triton")
    kernel_fn, configs = kernel_resources.kernel_and_configs("backward", "sm_90")
    types = kernel_resources.signature(kernel_fn, "backward", "fp16")
    assert types["Q"] == "*fp16" and types["DQ"] == "*fp32" and types["stride_qt"] == "i32"
    marked = {kernel_fn.arg_names[index] for (index,) in kernel_resources.divisibility(kernel_fn, types)}
    # The JIT marks aligned pointers and strides divisible by 16; without that the K/V tiles are
    # not copied asynchronously and the resources are not those of a real launch.
    assert {"Q", "K", "V", "DOUT", "stride_qt", "stride_kh"} <= marked and "num_heads" not in marked
    assert len(configs) > len(kernel_resources.kernel_and_configs("backward", "sm_80")[1])
