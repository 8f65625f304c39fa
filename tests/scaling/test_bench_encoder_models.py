"""`scaling bench encoder --models`: settings true to the shipped configs, batches, ratios, target rows, the
harness end to end on a toy setting with a stub timer, and the CLI's one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from scaling import cli
from scaling.benchmarks import encoder_models
from scaling.benchmarks.encoder_models import (
    IMPLEMENTATIONS,
    MODEL_SETTINGS,
    RESULT_COLUMNS,
    ModelBenchConfig,
    ModelSetting,
    add_ratios,
    model_batch_lengths,
    target_rows,
)

REPOSITORY = Path(__file__).resolve().parents[2]


def yaml_of(path: str) -> dict:
    return yaml.safe_load((REPOSITORY / path).read_text())


def test_table4_setting_is_the_shipped_table4_runs() -> None:
    setting = MODEL_SETTINGS["table4"]
    for name in ("hstu", "sasrec"):
        run = yaml_of(f"sweeps/runs/table4-ml-100k-{name}.yaml")
        assert run["model"]["name"] == name
        assert (run["model"]["num_layers"], run["model"]["num_heads"], run["model"]["embedding_dim"],
                run["model"]["dropout"]) == (setting.num_layers, setting.num_heads, setting.embedding_dim, setting.dropout)
        assert run["data"]["max_seq_len"] == setting.max_seq_len and run["train"]["batch_size"] == setting.batch_size


def test_quickstart_setting_is_the_largest_quickstart_hstu() -> None:
    setting = MODEL_SETTINGS["quickstart"]
    sweep = yaml_of("sweeps/quickstart.yaml")
    group = next(group for group in sweep["groups"] if group["name"] == "hstu")
    sizes = group["zip"][0]
    largest = {key: values[-1] for key, values in sizes.items() if key != "train.lr"}
    assert largest == {"model.num_layers": setting.num_layers, "model.embedding_dim": setting.embedding_dim,
                       "model.num_heads": setting.num_heads, "data.max_seq_len": setting.max_seq_len}
    assert group["config"]["train"]["batch_size"] == setting.batch_size
    assert sweep["config"]["model"]["dropout"] == setting.dropout


def test_jagged_lengths_look_like_ml100k_training_chunks() -> None:
    many = ModelSetting("test", 1, 1, 8, 0.0, max_seq_len=200, batch_size=20_000, num_items=10)
    lengths = np.array(model_batch_lengths(many, "jagged", seed=0))
    assert lengths.min() >= 1 and lengths.max() == 200
    assert abs(np.median(lengths) - 200 / 3) < 4  # ml-100k: median 64 of 200
    assert 0.10 < np.mean(lengths == 200) < 0.18  # ml-100k: 15% at the cap
    setting = MODEL_SETTINGS["table4"]
    assert model_batch_lengths(setting, "full", seed=0) == [200] * 128
    assert model_batch_lengths(setting, "jagged", seed=3) == model_batch_lengths(setting, "jagged", seed=3)
    with pytest.raises(ValueError, match="full, jagged"):
        model_batch_lengths(setting, "padded", seed=0)


def rows_with_times(times: dict[tuple[str, str, str], float]) -> list[dict[str, object]]:
    return [{"setting": "table4", "batch": batch, "model": model, "backend": backend, "ms": cpu_ms, "cpu_ms": cpu_ms,
             "gflop": 1.0}
            for (batch, model, backend), cpu_ms in times.items()]


def test_ratios_divide_by_sasrec_on_the_same_batch_and_targets_read_them() -> None:
    rows = add_ratios(rows_with_times({
        ("jagged", "hstu", "reference"): 300.0, ("jagged", "hstu", "cpu"): 60.0,
        ("jagged", "sasrec", "reference"): 100.0, ("jagged", "sasrec", "cpu"): 80.0,
        ("full", "hstu", "cpu"): 90.0, ("full", "sasrec", "reference"): 100.0,
    }))
    hstu_cpu = next(row for row in rows if row["batch"] == "jagged" and row["model"] == "hstu" and row["backend"] == "cpu")
    assert hstu_cpu["vs_sasrec_reference"] == pytest.approx(0.6) and hstu_cpu["vs_sasrec_cpu"] == pytest.approx(0.75)
    targets = {row["target"]: row for row in target_rows(rows)}
    assert targets["table4 jagged: hstu-cpu / sasrec-cpu"]["status"] == "met"
    assert targets["table4 full: hstu-cpu / sasrec-reference"]["status"] == "MISSED"
    assert targets["table4 full: hstu-cpu / sasrec-cpu"]["status"] == "not measured"


def test_harness_runs_every_implementation_on_a_toy_setting(monkeypatch, tmp_path) -> None:
    toy = ModelSetting("toy", num_layers=2, num_heads=2, embedding_dim=8, dropout=0.1, max_seq_len=12, batch_size=5,
                       num_items=20)
    monkeypatch.setitem(MODEL_SETTINGS, "toy", toy)
    calls: list[str] = []

    def stub_timer(steps):
        for name, step in steps.items():
            step()
            calls.append(name)
        return {name: (4.0, 2.0) if name.startswith("hstu") else (8.0, 4.0) for name in steps}

    threads = torch.get_num_threads()
    rows = encoder_models.run_model_benchmark(ModelBenchConfig(("toy",), threads=1, repeats=1, seed=0), stub_timer)
    assert torch.get_num_threads() == threads  # restored
    assert [(row["batch"], row["model"], row["backend"]) for row in rows] == [
        (batch, model, backend) for batch in ("full", "jagged") for model, backend in IMPLEMENTATIONS]
    assert len(calls) == len(rows)
    assert all(row["vs_sasrec_cpu"] == (0.5 if row["model"] == "hstu" else 1.0) for row in rows)
    # Model FLOPs per step: 3 x the backbone's forward, the same for both backends; HSTU (f1 4d^2 + f2 d^2) under
    # SASRec (4d^2 projections + 2 d d_ff feed-forward with d_ff = d) at equal attention work.
    by_key = {(row["batch"], row["model"], row["backend"]): row for row in rows}
    for batch in ("full", "jagged"):
        hstu, sasrec = by_key[(batch, "hstu", "cpu")], by_key[(batch, "sasrec", "cpu")]
        assert hstu["gflop"] == by_key[(batch, "hstu", "reference")]["gflop"] > 0
        assert hstu["flops_vs_sasrec"] == pytest.approx(hstu["gflop"] / sasrec["gflop"]) and hstu["flops_vs_sasrec"] < 1
        assert hstu["gflop_s"] == pytest.approx(hstu["gflop"] / 2e-3)  # the stub's 2 CPU ms
    path = tmp_path / "models.csv"
    from scaling.benchmarks.report import write_csv
    write_csv(rows, RESULT_COLUMNS, path)
    with path.open() as handle:
        assert list(next(csv.DictReader(handle))) == list(RESULT_COLUMNS)


def test_bound_row_is_hstu_without_its_elementwise_work(monkeypatch) -> None:
    toy = ModelSetting("toy", num_layers=1, num_heads=1, embedding_dim=8, dropout=0.5, max_seq_len=6, batch_size=3,
                       num_items=20)
    monkeypatch.setitem(MODEL_SETTINGS, "toy", toy)
    config = ModelBenchConfig(("toy",), threads=1, repeats=1, seed=0, bound=True)
    rows = encoder_models.run_model_benchmark(config, encoder_models.untimed)
    assert [(row["model"], row["backend"]) for row in rows[:5]] == [*IMPLEMENTATIONS, ("hstu-bound", "cpu")]
    bound = rows[4]
    assert bound["gflop"] == rows[1]["gflop"] and bound["vs_sasrec_cpu"] is None  # untimed
    # What the bound layer computes: Split(f1(X)), then f2(A V); no norm, SiLU, gate or dropout.
    from model.config import ModelConfig
    from model.inputs import Vocabulary
    from model.registry import build_model
    layer = build_model(ModelConfig(name="hstu", num_layers=1, num_heads=1, embedding_dim=8, dropout=0.5),
                        "retrieval", Vocabulary(20, 6)).backbone.encoder.layers[0].train()
    encoder_models.without_elementwise(layer)
    x = torch.randn(5, 8)
    u, v, q, k = layer.split_streams(x)
    torch.testing.assert_close(torch.cat([u, v.flatten(1), q.flatten(1), k.flatten(1)], 1), layer.f1(x))
    torch.testing.assert_close(layer.transform(v.flatten(1), u), layer.f2(v.flatten(1)))


def test_round_robin_timer_reports_wall_and_cpu_medians() -> None:
    counts = {"a": 0, "b": 0}

    def step(name):
        def run() -> None:
            counts[name] += 1
        return run

    times = encoder_models.round_robin_timer(3)({"a": step("a"), "b": step("b")})
    assert counts == {"a": 3 + encoder_models.WARMUP_STEPS, "b": 3 + encoder_models.WARMUP_STEPS}
    assert all(len(value) == 2 and value[0] >= 0 and value[1] >= 0 for value in times.values())


@pytest.mark.parametrize("argv, message", [
    (["--models", "table9"], "--models: unknown setting 'table9'"),
    (["--models", "table4", "--device", "cuda"], "--models times on the CPU"),
    (["--models", "table4", "--threads", "0"], "--threads must be >= 1"),
    (["--bound"], "--bound adds a row to the --models table"),
])
def test_bad_model_options_exit_with_one_line(monkeypatch, capsys, argv: list[str], message: str) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"bench": "scaling.commands.bench"})
    assert cli.main(["bench", "encoder", *argv]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
