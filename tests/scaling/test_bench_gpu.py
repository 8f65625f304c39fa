"""``scaling bench gpu``: the prepared GPU check runs whole on the CPU with --dry-run and writes one CSV + markdown table.

The dry run times nothing; it proves that every section runs, that correctness is measured (the
CPU backend against fp64), that activation bytes and targets are filled in, and that a broken
section costs only its own rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.errors import UserError
from scaling.benchmarks import gpu_check
from scaling.cli import main


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    out = tmp_path_factory.mktemp("gpu-check")
    assert main(["bench", "gpu", "--dry-run", "--out", str(out)]) == 0
    with (out / "gpu_check.csv").open() as stream:
        return out, list(csv.DictReader(stream))


def test_the_dry_run_exercises_every_section_into_one_table(dry_run):
    out, rows = dry_run
    assert {row["section"] for row in rows} == set(gpu_check.SECTIONS)
    assert not [row for row in rows if row["metric"] == "error"]  # no section failed
    markdown = (out / "gpu_check.md").read_text()
    assert "DRY RUN" in markdown and markdown.count("\n| ") == len(rows) + 1  # header + one line per row
    assert list(rows[0]) == list(gpu_check.COLUMNS)


def test_correctness_is_measured_against_fp64_even_in_the_dry_run(dry_run):
    _, rows = dry_run
    errors = [row for row in rows if row["section"] == "correctness"]
    names = {"error out", "error dq", "error dk", "error dv", "error d_rab_p", "error d_rab_t"}
    assert {(row["dtype"], row["metric"]) for row in errors} == {(d, n) for d in ("fp32", "bf16") for n in names}
    assert all(row["status"] == "met" and 0 <= float(row["value"]) <= float(row["target"][3:]) for row in errors)


def test_targets_are_listed_and_nothing_timed_is_claimed(dry_run):
    _, rows = dry_run
    timed = [row for row in rows if row["metric"] in ("fwd TFLOP/s", "fwd+bwd TFLOP/s", "ms/layer", "MFU", "tokens/s")]
    assert timed and all(row["value"] == "" for row in timed)
    targets = {(row["section"], row["metric"]): row for row in rows if row["target"]}
    assert targets[("attention", "fwd TFLOP/s")]["target"] == ">= 500"
    assert targets[("attention", "fwd+bwd TFLOP/s")]["status"] == "not measured"
    assert targets[("training", "MFU")]["target"] == ">= 0.35"
    memory = [row for row in rows if row["metric"].startswith("activation bytes/token HSTU / Transformer")]
    assert len(memory) == 1 and float(memory[0]["value"]) > 0  # saved bytes are counted on any device
    saved = [row for row in rows if row["metric"] == "saved activations" and row["impl"].startswith("hstu")]
    assert saved and all(float(row["value"]) > 0 for row in saved)


def test_a_failing_section_is_one_row_and_the_others_still_run(monkeypatch):
    def broken(config, timer, progress):
        raise RuntimeError("no kernel image is available for execution on the device\nmore detail")

    monkeypatch.setattr(gpu_check, "attention_rows", broken)
    config = gpu_check.GpuCheckConfig(device="cpu", dry_run=True, sections=("attention", "mfalcon"))
    rows = gpu_check.run_gpu_check(config, lambda fn: fn(), progress=lambda line: None)
    assert rows[0]["metric"] == "error" and rows[0]["note"] == (
        "RuntimeError: no kernel image is available for execution on the device")
    assert {row["section"] for row in rows[1:]} == {"mfalcon"}


def test_without_a_gpu_the_real_check_refuses_in_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        from scaling.commands import bench_gpu

        bench_gpu.run(_args(dry_run=False))


def _args(**overrides):
    import argparse

    values = {"out": Path("unused"), "device": None, "sections": list(gpu_check.SECTIONS), "seed": 0, "dry_run": True}
    return argparse.Namespace(**{**values, **overrides})
