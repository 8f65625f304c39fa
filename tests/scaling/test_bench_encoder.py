"""`scaling bench encoder`: SL lengths, paper memory figures, rows, speedups, targets, table/CSV, CLI, CPU harness."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from model.inputs import JaggedSequences
from scaling import cli
from scaling.benchmarks import encoder
from scaling.benchmarks.encoder import (
    RESULT_COLUMNS,
    TARGET_COLUMNS,
    add_speedups,
    benchmark_cases,
    encoder_batch_lengths,
    hstu_paper_activation_bytes,
    result_row,
    stochastic_length_lengths,
    target_rows,
    transformer_paper_activation_bytes,
)
from scaling.benchmarks.measure import saved_activation_bytes
from scaling.benchmarks.report import format_table, write_csv
from scaling.data.batching import SequenceBatch
from scaling.data.stochastic_length import expected_sparsity, stochastic_length, subsequence_length

torch.set_num_threads(1)


def test_paper_activation_memory_is_14d_for_hstu_and_33d_for_the_transformer() -> None:
    d = 512
    assert hstu_paper_activation_bytes(d, heads=8, qk_dim=64, v_dim=64) == 14 * d
    assert transformer_paper_activation_bytes(d, heads=8, qk_dim=64, v_dim=64, ffn_dim=4 * d) == 33 * d


def test_sl_leaves_short_sequences_and_cuts_long_ones_to_exactly_l() -> None:
    n_max, alpha = 1024, 1.6  # L = 256
    lengths = [1, 256, 257, 1024] * 500
    out = stochastic_length_lengths(lengths, n_max, alpha, np.random.default_rng(0))
    assert out[0::4] == [1] * 500 and out[1::4] == [256] * 500
    assert set(out[2::4]) == {256, 257} and set(out[3::4]) == {256, 1024}


def test_sl_keeps_a_long_sequence_whole_with_eq4_probability() -> None:
    n_max, alpha, n, count = 4096, 1.6, 2000, 20_000
    out = np.array(stochastic_length_lengths([n] * count, n_max, alpha, np.random.default_rng(1)))
    p = n_max**alpha / n**2  # 0.148
    assert abs(np.mean(out == n) - p) < 4.5 * math.sqrt(p * (1 - p) / count)
    assert set(out.tolist()) == {n, subsequence_length(n_max, alpha)}


def test_sl_on_skewed_lengths_matches_the_expected_attention_sparsity() -> None:
    n_max, alpha = 8192, 1.6
    lengths = encoder_batch_lengths(n_max, 2_000_000, "jagged", alpha, seed=2)
    shortened = np.array(stochastic_length_lengths(lengths, n_max, alpha, np.random.default_rng(3)), dtype=np.float64)
    expected = expected_sparsity(np.array(lengths), None, n_max, alpha)
    assert 1 - np.mean(shortened**2) / n_max**2 == pytest.approx(expected.s2, abs=2e-3)
    assert 1 - np.mean(shortened) / n_max == pytest.approx(expected.sparsity, abs=2e-3)


def test_sl_lengths_are_those_the_training_path_leaves_for_one_token_events() -> None:
    lengths, n_max, alpha = [3, 40, 64, 64, 50, 64, 10, 64], 64, 1.6
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64)
    tokens = int(offsets[-1])
    stamps = torch.arange(tokens, dtype=torch.int64) * 10
    batch = SequenceBatch(
        sequences=JaggedSequences(torch.arange(1, tokens + 1), stamps, stamps + 5, offsets),
        supervised_rows=torch.arange(tokens), target_events=torch.arange(tokens), target_item_ids=torch.arange(tokens),
        labels=None,
    )
    for seed in range(5):
        trained = stochastic_length(batch, n_max, alpha, "greedy", np.random.default_rng(seed)).sequences.offsets
        assert np.diff(trained.numpy()).tolist() == stochastic_length_lengths(lengths, n_max, alpha, np.random.default_rng(seed))


def test_batches_hold_the_same_tokens_and_sl_only_shortens() -> None:
    full = encoder_batch_lengths(4096, 32768, "full", 1.6, seed=0)
    jagged = encoder_batch_lengths(4096, 32768, "jagged", 1.6, seed=0)
    shortened = encoder_batch_lengths(4096, 32768, "jagged-sl", 1.6, seed=0)
    assert sum(full) == sum(jagged) == 32768 and full == [4096] * 8
    assert len(shortened) == len(jagged) and all(s <= j for s, j in zip(shortened, jagged))
    assert sum(s * s for s in shortened) < 0.5 * sum(j * j for j in jagged)  # Eq. 4 removes most attention work
    assert shortened == encoder_batch_lengths(4096, 32768, "jagged-sl", 1.6, seed=0)
    with pytest.raises(ValueError, match="jagged-sl"):
        encoder_batch_lengths(4096, 32768, "padded", 1.6, seed=0)


def test_sl_is_applied_to_training_batches_only() -> None:
    cases = benchmark_cases([1024])
    assert cases == [(1024, "train", "full"), (1024, "train", "jagged"), (1024, "train", "jagged-sl"),
                     (1024, "infer", "full"), (1024, "infer", "jagged")]


def test_rows_report_per_layer_time_throughput_and_memory() -> None:
    row = result_row(1024, "train", "full", "hstu-triton", [1024, 1024], layers=2, milliseconds=4.0,
                     forward_flops=1e9, act_bytes=2048 * 2 * 700, peak_bytes=None, paper_bytes_per_token=7168.0)
    assert row["ms"] == 2.0 and row["tokens"] == 2048 and row["sequences"] == 2
    assert row["Mtok_s"] == pytest.approx(2048 / 2e-3 / 1e6)
    assert row["tflops"] == pytest.approx(3 * 1e9 / 2 / 2e-3 / 1e12)  # training = 3 x forward, per layer
    assert row["act_B_tok"] == 700 and row["peak_B_tok"] is None
    untimed = result_row(1024, "infer", "full", "hstu-triton", [1024], layers=1, milliseconds=None, forward_flops=1e9)
    assert untimed["ms"] is None and untimed["Mtok_s"] is None and untimed["tflops"] is None


def timed_rows() -> list[dict[str, object]]:
    def row(batch: str, impl: str, ms: float, act: int | None = None) -> dict[str, object]:
        return result_row(8192, "train", batch, impl, [8192], layers=1, milliseconds=ms, forward_flops=1.0, act_bytes=act)

    return [row("full", "hstu-triton", 10.0, act=8192 * 9000), row("full", "transformer-flash-jagged", 25.0, act=8192 * 16000),
            row("jagged", "hstu-triton", 4.0), row("jagged", "transformer-flash-jagged", 8.0),
            row("jagged-sl", "hstu-triton", 0.5), row("jagged-sl", "transformer-flash-jagged", 1.0)]


def test_speedups_pair_hstu_with_the_transformer_on_the_same_and_on_the_unshortened_batch() -> None:
    rows = add_speedups(timed_rows())
    by = {(row["batch"], row["impl"]): row for row in rows}
    assert by[("full", "hstu-triton")]["speedup"] == pytest.approx(2.5)
    assert by[("jagged-sl", "hstu-triton")]["speedup"] == pytest.approx(2.0)
    assert by[("jagged-sl", "hstu-triton")]["speedup_no_sl"] == pytest.approx(16.0)  # 8 ms without SL / 0.5 ms
    assert by[("jagged", "hstu-triton")]["speedup_no_sl"] is None
    assert by[("full", "transformer-flash-jagged")]["speedup"] is None


def test_targets_say_met_missed_or_not_measured() -> None:
    targets = target_rows(add_speedups(timed_rows()))
    assert [t["status"] for t in targets] == ["met", "met", "MISSED"]
    assert targets[2]["measured"] == pytest.approx(9000 / 16000)
    assert [t["status"] for t in target_rows(add_speedups(timed_rows()), n=4096)] == ["not measured"] * 3


def test_table_and_csv_carry_every_column(tmp_path) -> None:
    rows = add_speedups(timed_rows())
    lines = format_table(rows, RESULT_COLUMNS).splitlines()
    assert lines[0].split() == list(RESULT_COLUMNS) and len(lines) == 2 + len(rows)
    assert format_table(target_rows(rows), TARGET_COLUMNS).splitlines()[0].split() == list(TARGET_COLUMNS)
    path = tmp_path / "encoder.csv"
    write_csv(rows, RESULT_COLUMNS, path)
    with path.open() as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == list(RESULT_COLUMNS) and read[0]["speedup"] == "2.5" and read[1]["speedup"] == ""


def test_saved_bytes_count_each_storage_once_and_skip_excluded_tensors() -> None:
    weight = torch.randn(8, 4, requires_grad=True)
    x = torch.randn(3, 8, requires_grad=True)

    def forward() -> torch.Tensor:
        hidden = x @ weight  # saves x and weight
        a, b = hidden.split(2, dim=1)
        return torch.nn.functional.silu(a) * torch.sigmoid(b)  # saves views of hidden, the sigmoid output, ...

    counted = saved_activation_bytes(forward, [weight])
    hidden, sig_b, silu_a = 3 * 4 * 4, 3 * 2 * 4, 3 * 2 * 4
    assert counted == x.numel() * 4 + hidden + sig_b + silu_a


def test_without_a_gpu_the_command_exits_with_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"bench": "scaling.commands.bench"})
    device = "cpu" if torch.cuda.is_available() else "cuda"
    assert cli.main(["bench", "encoder", "--device", device]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "needs a CUDA GPU" in error


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "2.5"], "--alpha must be in (1, 2]"),
    (["--layers", "0"], "--layers must be >= 1"),
    (["--dry-run", "--device", "cuda"], "--dry-run runs on the CPU"),
])
def test_bad_options_exit_with_one_line(monkeypatch, capsys, argv: list[str], message: str) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"bench": "scaling.commands.bench"})
    assert cli.main(["bench", "encoder", *argv]) == 2
    assert message in capsys.readouterr().err


def test_harness_on_cpu_with_a_stub_timer() -> None:
    """Every case runs (forward, forward+backward, memory hooks) at toy size; rows and speedups are filled in."""
    calls: list[object] = []

    def stub_timer(fn) -> float:
        fn()
        calls.append(fn)
        return 3.0

    config = encoder.EncoderBenchConfig(lengths=(16,), batch_tokens=64, alpha=1.6, layers=2, dtype="bf16",
                                        device="cpu", rab=True, transformer_attention="math-padded", seed=0)
    rows = encoder.run_encoder_benchmark(config, stub_timer)
    assert [(row["mode"], row["batch"], row["impl"]) for row in rows] == [
        (mode, batch, impl) for mode, batch in [("train", "full"), ("train", "jagged"), ("train", "jagged-sl"),
                                                ("infer", "full"), ("infer", "jagged")]
        for impl in ("hstu-reference+rab", "transformer-math-padded")
    ]
    assert all(row["note"] == "" for row in rows) and len(calls) == len(rows)
    assert all(row["ms"] == 1.5 and row["speedup"] in (None, 1.0) for row in rows)  # 3 ms over 2 layers
    hstu_train = [row for row in rows if row["mode"] == "train" and row["impl"].startswith("hstu")]
    # HSTU keeps the same bytes per token whatever the lengths (nothing is padded): X, U V Q K and A V,
    # 12d, below the paper's fused 14d (which also keeps LayerNorm(X); tests/scaling/test_activation_memory.py).
    assert len({row["act_B_tok"] for row in hstu_train}) == 1
    assert hstu_train[0]["act_B_tok"] == 12 * 512 < hstu_train[0]["paper_B_tok"] == 14 * 512
    assert [row["speedup_no_sl"] for row in hstu_train] == [None, None, 1.0]
