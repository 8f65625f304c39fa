"""``scaling bench train``: it takes the real training steps, projects the real trial, and its rows add up.

No timing is asserted: only that the measured pieces are consistent with each other (phases sum
to the outer clock, GFLOP/s is FLOPs over time, the peak fraction is GFLOP/s over the peak).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from core.errors import UserError
from scaling.benchmarks.training import select_cases, time_training_steps, trial_schedule
from scaling.cli import main
from scaling.train import build_run, train, train_pass

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "sweeps" / "quickstart.yaml"
TINY_DATA = [
    "data.synthetic_industrial.num_users=60",
    "data.synthetic_industrial.num_items=200",
    "data.synthetic_industrial.num_categories=10",
    "data.synthetic_industrial.mean_events_per_user=20",
    "data.synthetic_industrial.max_events_per_user=48",
]


def test_the_cases_are_the_quickstarts_largest_models_and_sasrec_at_the_hstus_size():
    hstu, sasrec, dcnv2 = select_cases(QUICKSTART, ["hstu", "sasrec", "dcnv2"])
    assert (hstu.config.model.num_layers, hstu.config.model.embedding_dim, hstu.config.model.num_heads) == (6, 128, 4)
    assert (hstu.config.data.max_seq_len, hstu.config.train.batch_size, hstu.config.train.lr) == (128, 16, 5e-4)
    assert sasrec.config.model.name == "sasrec"
    assert sasrec.config.model.num_layers == 6 and sasrec.config.model.embedding_dim == 128
    assert sasrec.config.data == hstu.config.data and sasrec.config.train == hstu.config.train
    assert (dcnv2.config.model.num_layers, dcnv2.config.model.embedding_dim, dcnv2.config.model.dlrm.hidden_dim) == (4, 64, 256)
    assert dcnv2.config.train.batch_size == 64
    assert hstu.config.data.dataset == dcnv2.config.data.dataset == "synthetic-industrial"


def test_an_unknown_model_is_a_one_line_error():
    with pytest.raises(UserError, match="^--models: bert not in quickstart.yaml; choose from hstu, dcnv2, sasrec$"):
        select_cases(QUICKSTART, ["hstu", "bert"])


def test_overrides_reach_every_case_and_are_validated():
    cases = select_cases(QUICKSTART, ["hstu", "dcnv2"], ["data.synthetic_industrial.num_users=60"])
    assert [case.config.data.synthetic_industrial.num_users for case in cases] == [60, 60]
    with pytest.raises(UserError, match="num_users"):
        select_cases(QUICKSTART, ["hstu"], ["data.synthetic_industrial.num_users=0"])


def _tiny(name: str, *extra: str):
    """The quickstart case ``name`` on tiny data, with ``extra`` overrides."""
    (case,) = select_cases(QUICKSTART, [name], [*TINY_DATA, *extra])
    return case.config


@pytest.mark.parametrize("name", ["hstu", "dcnv2"])
def test_timed_steps_train_exactly_as_the_training_loop_does(name):
    """Same batches, same updates: the model after the benchmark's steps equals the one train_pass leaves."""
    config = _tiny(name, "train.max_steps=5", "train.batch_size=4")
    timed = build_run(config)
    times = time_training_steps(timed, steps=3, warmup_steps=2)
    real = build_run(config)
    train_pass(real, real.batcher.chunks(real.split[0]), "time", None)  # stops at train.max_steps
    assert times.steps == 3 and timed.step == real.step == 5
    assert timed.flops == pytest.approx(real.flops)
    for (key, mine), theirs in zip(timed.model.state_dict().items(), real.model.state_dict().values()):
        assert torch.equal(mine, theirs), key


@pytest.mark.parametrize("regime", [
    ["train.regime=streaming", "train.num_windows=5", "train.eval_every=2", "eval.progressive=true"],
    ["train.regime=multi_epoch", "train.epochs=3", "train.eval_every=2", "train.patience=0"],
])
def test_the_projected_trial_has_the_steps_and_evaluations_of_a_real_trial(regime):
    config = _tiny("hstu", *regime, "model.num_layers=1", "model.embedding_dim=16", "data.max_seq_len=16")
    schedule = trial_schedule(build_run(config))
    result = train(config, progress=False)
    assert schedule.steps == result["steps"]
    assert schedule.validations == len(result["history"])
    if "window_targets" in result:
        windows = result["window_targets"]
        # evaluated after windows 1 (every 2nd) and 2 (the last); only the first has a next window to score
        assert schedule.validations == 2 and "progressive" in result["history"][0]
        assert schedule.eval_targets == 2 * windows[-2] + windows[2] + windows[-1]
    else:
        targets = result["split_targets"]
        assert schedule.eval_targets == schedule.validations * targets["valid"] + targets["test"]


def test_the_command_prints_and_writes_consistent_rows(tmp_path, capsys):
    out = tmp_path / "bench"
    sets = [word for override in TINY_DATA for word in ("--set", override)]
    code = main(["bench", "train", "--steps", "3", "--warmup", "1", *sets, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fp32 matmul peak" in printed and "eval_share" in printed
    rows = list(csv.DictReader((out / "train.csv").open()))
    assert [row["model"] for row in rows] == ["hstu", "sasrec", "dcnv2"]
    assert [row["unit"] for row in rows] == ["tokens/s", "tokens/s", "impressions/s"]
    assert "| model |" in (out / "train.md").read_text()
    for row in rows:
        value = {key: float(text) for key, text in row.items() if key not in ("model", "unit")}
        assert value["steps"] == 3 and value["threads"] == 1
        phases = sum(value[f"{phase}_ms"] for phase in ("data", "forward", "backward", "optimizer"))
        assert phases == pytest.approx(value["step_ms"], rel=0.1, abs=0.5)  # the phases cover the outer clock
        seconds = value["step_ms"] * value["steps"] / 1000
        assert value["gflop_per_s"] == pytest.approx(value["gflop"] / seconds, rel=1e-6)
        assert value["throughput"] == pytest.approx(value["units"] / seconds, rel=1e-6)
        assert value["peak_fraction"] == pytest.approx(value["gflop_per_s"] / value["peak_gflop_per_s"], rel=1e-6)
        shares = [value[f"{phase}_share"] for phase in ("data", "forward", "backward", "optimizer", "eval")]
        assert sum(shares) == pytest.approx(1.0) and min(shares) >= 0
        per_step = value["trial_s"] - value["eval_s"] / value["eval_targets"] * value["trial_eval_targets"]
        assert per_step == pytest.approx(phases / 1000 * value["trial_steps"], rel=1e-6)


def test_bad_arguments_are_one_line_errors(capsys):
    assert main(["bench", "train", "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --steps must be >= 1; got 0"
    assert main(["bench", "train", "--models", "bert"]) == 2
    assert "error: --models: bert not in quickstart.yaml" in capsys.readouterr().err
