"""`scaling bench attention`: FLOP counting, batch construction, table/CSV output and the no-GPU error."""

from __future__ import annotations

import csv

import pytest
import torch

from scaling import cli
from scaling.benchmarks.attention import (
    FORWARD_BACKWARD_FACTOR,
    RESULT_COLUMNS,
    attention_flops,
    batch_lengths,
    draw_jagged_lengths,
    tflops_per_second,
)
from scaling.benchmarks.report import format_table, write_csv


def test_full_batch_flops_follow_the_flash_attention_formula() -> None:
    batch, n, heads, dim = 4, 2048, 8, 64
    forward = attention_flops([n] * batch, heads, dim, dim, backward=False)
    assert forward == 4 * batch * n**2 * heads * dim / 2
    assert attention_flops([n] * batch, heads, dim, dim, backward=True) == forward * FORWARD_BACKWARD_FACTOR


def test_jagged_flops_use_the_sum_of_squared_lengths() -> None:
    lengths = [3, 0, 10]
    assert attention_flops(lengths, 2, 16, 32, backward=False) == (9 + 100) * 2 * 2 * (16 + 32) / 2


def test_throughput_is_flops_over_time_and_none_without_a_timing() -> None:
    assert tflops_per_second(2e12, 1000.0) == pytest.approx(2.0)
    assert tflops_per_second(1e12, None) is None


@pytest.mark.parametrize("n", [1024, 8192])
def test_full_and_jagged_batches_hold_the_same_tokens(n: int) -> None:
    full = batch_lengths(n, 32768, "full", seed=0)
    jagged = batch_lengths(n, 32768, "jagged", seed=0)
    assert sum(full) == sum(jagged) == 32768
    assert max(jagged) <= n and min(jagged) >= 1
    assert len(jagged) > len(full)  # skewed: many sequences shorter than n


def test_jagged_lengths_are_seeded_and_skewed() -> None:
    lengths = draw_jagged_lengths(4096, 200_000, seed=3)
    assert lengths == draw_jagged_lengths(4096, 200_000, seed=3)
    assert sum(lengths) == 200_000
    median = sorted(lengths)[len(lengths) // 2]
    assert 300 < median < 700  # median n / 8 = 512
    assert sum(length == 4096 for length in lengths) / len(lengths) < 0.05


def test_table_has_a_header_and_one_aligned_line_per_row() -> None:
    rows = [{"n": 1024, "impl": "hstu-triton", "fwd_ms": 0.12345, "note": None},
            {"n": 8192, "impl": "sdpa-flash", "fwd_ms": 12.5, "note": "out of memory"}]
    lines = format_table(rows, ["n", "impl", "fwd_ms", "note"]).splitlines()
    assert lines[0].split() == ["n", "impl", "fwd_ms", "note"]
    assert lines[2].split() == ["1024", "hstu-triton", "0.123", "-"]
    assert lines[3].split()[:3] == ["8192", "sdpa-flash", "12.500"]
    assert len({len(line) for line in lines}) == 1


def test_csv_round_trips_rows_with_missing_values(tmp_path) -> None:
    rows = [{"n": 1024, "batch": "full", "fwd_ms": 0.5}, {"n": 2048, "batch": "jagged", "fwd_ms": None}]
    path = tmp_path / "out" / "bench.csv"
    write_csv(rows, RESULT_COLUMNS, path)
    with path.open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == list(RESULT_COLUMNS)
    assert read[0]["fwd_ms"] == "0.5" and read[1]["fwd_ms"] == "" and read[1]["batch"] == "jagged"


def test_without_a_gpu_the_command_exits_with_one_line(monkeypatch, capsys) -> None:
    # Only this command's module is registered: the others may not exist on this branch.
    monkeypatch.setattr(cli, "COMMANDS", {"bench": "scaling.commands.bench"})
    device = "cpu" if torch.cuda.is_available() else "cuda"
    assert cli.main(["bench", "attention", "--device", device]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "needs a CUDA GPU" in error


def test_benchmark_rows_on_cpu_with_a_stub_timer(monkeypatch) -> None:
    """The harness plumbing (inputs, closures, forward+backward, FLOP bookkeeping) at toy size."""
    from scaling.benchmarks import attention

    calls = []

    def run_once(fn) -> float:
        fn()
        calls.append(fn)
        return 2.0

    monkeypatch.setattr(attention, "_milliseconds", run_once)
    config = attention.AttentionBenchConfig(lengths=(32,), heads=2, head_dim=16, tokens=64, dtype="bf16",
                                            device="cpu", backend="reference", rab="both", seed=0)
    rows = attention.run_attention_benchmark(config)
    assert [(row["batch"], row["impl"]) for row in rows] == [
        ("full", "hstu-reference"), ("full", "sdpa-flash"), ("jagged", "hstu-reference"), ("jagged", "sdpa-flash"),
    ]
    hstu_full = rows[0]
    assert hstu_full["note"] == "" and hstu_full["tokens"] == 64 and hstu_full["sequences"] == 2
    expected = attention_flops([32, 32], 2, 16, 16, backward=False) / 2e-3 / 1e12
    assert hstu_full["fwd_tflops"] == pytest.approx(expected)
    assert hstu_full["fwd_bwd_tflops"] == pytest.approx(expected * FORWARD_BACKWARD_FACTOR)
    assert len(calls) == 2 * len([row for row in rows if not row["note"]])
