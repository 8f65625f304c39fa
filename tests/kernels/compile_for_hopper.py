"""Compile the attention kernels for Hopper (sm_90) and Ampere (sm_80) on a machine without a GPU.

The CPU interpreter executes kernels as Python and accepts code the real compiler rejects (for
example globals that are not ``tl.constexpr``), so test_compile.py runs this script in a fresh
process without TRITON_INTERPRET. It prints one JSON object per compiled (kernel, configuration,
target, dtype), every feature on: registers, spills, shared memory and its limit, wgmma (see
scaling/benchmarks/kernel_resources.py).

By default it compiles a representative subset (REPRESENTATIVE: per kernel and target the
configuration with the most registers, alternating dtypes, plus softmax on sm_90), which keeps
the suite's time reasonable; ``--all`` compiles every autotune configuration for both targets in
bf16 and fp16, SiLU and softmax (60 compiles, ten minutes or more on two cores), as
``scaling bench kernels --activations silu softmax`` does with a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from scaling.benchmarks.kernel_resources import ACTIVATIONS, compile_config, kernel_and_configs, survey  # noqa: E402

# (kernel, BLOCK_MxBLOCK_N/warps/stages, target, dtype, activation): the most register-hungry
# configurations of `scaling bench kernels` when the lists were last pruned.
REPRESENTATIVE = (
    ("forward", "128x64/w8/s4", "sm_90", "bf16", "silu"),
    ("forward", "128x64/w8/s3", "sm_80", "fp16", "silu"),
    ("backward", "32x128/w8/s2", "sm_90", "fp16", "silu"),
    ("backward", "16x128/w8/s3", "sm_80", "bf16", "silu"),
    ("forward", "128x64/w8/s3", "sm_90", "bf16", "softmax"),
    ("backward", "16x128/w8/s3", "sm_90", "bf16", "softmax"),
)


def representative() -> list:
    from scaling.benchmarks.kernel_resources import config_name

    rows = []
    for kernel, name, target, dtype, activation in REPRESENTATIVE:
        configs = {config_name(config): config for config in kernel_and_configs(kernel, target)[1]}
        if name not in configs:
            raise SystemExit(f"{kernel} has no configuration {name} for {target}; update REPRESENTATIVE")
        rows.append(compile_config(kernel, configs[name], target, dtype, activation))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every autotune configuration, target and dtype")
    rows = survey(activations=ACTIVATIONS) if parser.parse_args(argv).all else representative()
    for row in rows:
        print(json.dumps(row.row()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
