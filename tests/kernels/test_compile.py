"""The kernels compile for an H100 and an A100 with the real Triton compiler, even on a machine
without a GPU, and fit: no register spills and shared memory within the target's limit, with
every feature on (rab^{p,t} and its gradients, targets, contextual prefix).

The default suite compiles the representative subset of compile_for_hopper.py (the most
register-hungry configurations); GR_SCALING_FULL_KERNEL_SURVEY=1 compiles every autotune
configuration for sm_90 and sm_80 in bf16 and fp16, SiLU and softmax (ten minutes or more), like
``scaling bench kernels --activations silu softmax``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("compile_for_hopper.py")


def compile_rows(*flags: str) -> list[dict]:
    pytest.importorskip("triton.backends.nvidia")
    # A fresh process: this one imported triton with TRITON_INTERPRET=1 when no GPU is present.
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    result = subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True, env=env,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def assert_every_row_fits(rows: list[dict]) -> None:
    assert rows
    for row in rows:
        where = f"{row['kernel']} {row['activation']} {row['config']} {row['target']} {row['dtype']}"
        assert row["spill_stores"] == 0 and row["spill_loads"] == 0, f"{where} spills: {row}"
        assert 0 < row["registers"] <= 255, f"{where}: {row}"
        assert row["shared_bytes"] <= row["shared_limit"], f"{where} needs too much shared memory: {row}"
        # Hopper's matmuls must be warpgroup MMAs; Ampere has none.
        assert row["wgmma"] == (row["target"] == "sm_90"), f"{where}: wgmma {row['wgmma']}"


def test_representative_configs_compile_and_fit_on_sm90_and_sm80() -> None:
    rows = compile_rows()
    assert_every_row_fits(rows)
    assert {(row["kernel"], row["target"]) for row in rows} == {
        (kernel, target) for kernel in ("forward", "backward") for target in ("sm_90", "sm_80")}
    assert {row["dtype"] for row in rows} == {"bf16", "fp16"}
    assert {row["activation"] for row in rows} == {"silu", "softmax"}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GR_SCALING_FULL_KERNEL_SURVEY"),
                    reason="set GR_SCALING_FULL_KERNEL_SURVEY=1 to compile every config (several minutes)")
def test_every_autotune_config_compiles_and_fits_for_both_targets_and_dtypes() -> None:
    from kernels.triton_launch import backward_configs, forward_configs

    rows = compile_rows("--all")
    assert_every_row_fits(rows)
    expected = sum(len(configs_for(capability)) for configs_for in (forward_configs, backward_configs)
                   for capability in (90, 80)) * 2 * 2  # two dtypes, two activations
    assert len(rows) == expected
