"""Mixed precision, torch.compile and MFU in the one training path, on the CPU.

bf16 training of a tiny HSTU and DCN-v2 must land within stated tolerances of fp32 on the same
seed; the default ('auto') must stay the fp32 path on a CPU; fp16 scales its loss; compiled dense
layers give the eager losses; every result carries its MFU against a measured CPU peak.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.configtools import ConfigError
from scaling.config import load_run_config
from scaling.mfu import GPU_PEAKS, gpu_table_entry
from scaling.benchmarks.training import training_batches
from scaling.train import build_run, take_step, train

TINY_RANKING = [
    "data.dataset=synthetic-industrial", "data.task=ranking", "data.max_seq_len=32",
    "data.synthetic_industrial.num_users=120", "data.synthetic_industrial.num_items=200",
    "data.synthetic_industrial.num_categories=10", "data.synthetic_industrial.mean_events_per_user=30.0",
    "data.synthetic_industrial.max_events_per_user=64", "model.dropout=0.0", "train.regime=streaming",
    "train.epochs=1", "train.num_windows=4", "train.batch_size=16", "train.lr=0.002", "eval.batch_size=64",
    "model.embedding_dim=16", "model.num_heads=2",
]
# bf16 vs fp32 on the same seed (measured on this config: loss 6e-6..3e-4 relative, NE 3e-5..6e-4, AUC 4e-5..9e-4)
LOSS_RELATIVE_TOLERANCE = 0.01  # every evaluation's mean training loss
NE_TOLERANCE = 0.01  # test NE, absolute
AUC_TOLERANCE = 0.02  # test AUC, absolute
# fp32 losses of this config before train.precision existed: 'auto' on a CPU must keep them
FP32_LOSSES = {"hstu": [0.3579775442679723, 0.3590400695800781],
               "dcnv2": [0.3472786226442882, 0.33300699035123904]}


def tiny(model: str, *overrides: str):
    return load_run_config(None, [*TINY_RANKING, f"model.name={model}", *overrides])


def losses(result: dict) -> list[float]:
    return [entry["train_loss"] for entry in result["history"]]


@pytest.mark.parametrize("model", ["hstu", "dcnv2"])
def test_bf16_training_lands_within_tolerance_of_fp32_on_the_same_seed(model):
    full = train(tiny(model, "train.precision=fp32"), progress=False)
    half = train(tiny(model, "train.precision=bf16"), progress=False)
    assert (full["precision"], half["precision"]) == ("fp32", "bf16")
    assert losses(half) != losses(full)  # autocast took effect
    assert losses(half) == pytest.approx(losses(full), rel=LOSS_RELATIVE_TOLERANCE)
    assert abs(half["test"]["ne"] - full["test"]["ne"]) <= NE_TOLERANCE
    assert abs(half["test"]["auc"] - full["test"]["auc"]) <= AUC_TOLERANCE
    # auto is fp32 on a CPU: the same numbers as before precision was an option
    assert losses(full) == pytest.approx(FP32_LOSSES[model], rel=1e-6)


def test_auto_is_the_fp32_path_on_a_cpu_bit_for_bit():
    auto, full = (train(tiny("dcnv2", f"train.precision={p}", "train.max_steps=4"), progress=False)
                  for p in ("auto", "fp32"))
    assert auto["precision"] == "fp32"
    assert losses(auto) == losses(full) and auto["test"] == full["test"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_steps_update_fp32_master_weights_and_state(precision):
    run = build_run(tiny("hstu", f"train.precision={precision}"))
    batches = training_batches(run)
    first, _ = take_step(run, next(batches))
    take_step(run, next(batches))
    assert math.isfinite(first)
    assert all(p.dtype == torch.float32 for p in run.model.parameters())
    state = [value for entry in run.optimizer.state.values() for value in entry.values() if value.numel() > 1]
    assert state and all(value.dtype == torch.float32 for value in state)
    scaler = run.precision.scaler
    assert (scaler is not None) == (precision == "fp16")  # only fp16 scales its loss
    if scaler is not None:
        assert scaler.get_scale() > 1.0


def test_a_misspelt_precision_names_the_key():
    with pytest.raises(ConfigError, match="train.precision"):
        tiny("hstu", "train.precision=fp8")


def test_compiled_dense_layers_give_the_eager_losses():
    eager = train(tiny("dcnv2", "model.num_layers=1", "train.max_steps=3"), progress=False)
    run = build_run(tiny("dcnv2", "model.num_layers=1", "train.max_steps=3", "train.compile=true"))
    compiled_layers = [name for name, module in run.model.named_modules()
                       if getattr(module, "_compiled_call_impl", None) is not None]
    assert compiled_layers and all(".layers." in name for name in compiled_layers)  # the cross layers, not embeddings
    compiled = train(tiny("dcnv2", "model.num_layers=1", "train.max_steps=3", "train.compile=true"), progress=False)
    assert losses(compiled) == pytest.approx(losses(eager), rel=1e-4)


def test_every_result_carries_its_mfu_against_a_measured_cpu_peak():
    result = train(tiny("dcnv2", "train.max_steps=4"), progress=False)
    mfu = result["mfu"]
    assert mfu["peak_source"].startswith("measured: fp32 1024^3 matmul on cpu")
    assert mfu["train_flops_per_s"] == pytest.approx(result["flops"] / result["timing"]["train_wall_seconds"])
    assert mfu["mfu"] == pytest.approx(mfu["train_flops_per_s"] / mfu["peak_flops_per_s"])
    assert 0 < mfu["mfu"] < 1


def test_a_data_parallel_trials_mfu_is_against_every_workers_peak():
    from scaling.mfu import Peak, utilisation

    one = utilisation(6e12, 2.0, Peak(1e13, "measured"))
    two = utilisation(6e12, 2.0, Peak(1e13, "measured"), devices=2)  # two workers trained the same global batches
    assert one["train_flops_per_s"] == two["train_flops_per_s"] == 3e12
    assert (one["mfu"], two["mfu"]) == (pytest.approx(0.3), pytest.approx(0.15))
    assert two["peak_flops_per_s"] == 2e13 and two["peak_source"] == "2 x measured"


@pytest.mark.parametrize("name, entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100-PCIE-40GB", "A100"), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", None), ("NVIDIA H100 NVL", None), ("NVIDIA GeForce RTX 4090", None),
])
def test_gpu_names_find_their_datasheet_peaks(name, entry):
    assert gpu_table_entry(name) == entry
    assert entry is None or GPU_PEAKS[entry]["bf16"] > GPU_PEAKS[entry]["fp32"]
