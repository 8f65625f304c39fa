"""Compile both attention kernels for an H100 (sm_90) on a machine without a GPU.

The CPU interpreter executes kernels as Python and accepts code the real compiler rejects (for
example globals that are not ``tl.constexpr``), so test_compile.py runs this script in a fresh
process without TRITON_INTERPRET. It compiles one autotune config of each kernel with every
feature switched on (SiLU and softmax), through PTX and ptxas to a cubin, and prints the kernel's resources.

By hand, ``python tests/kernels/compile_for_hopper.py --survey`` compiles every autotune config
(with all features off and on) and prints registers and spills from ``ptxas -v``: configs that
spill are unlikely to win the autotuning and can be pruned.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from kernels.triton_backward import hstu_attention_backward_kernel  # noqa: E402
from kernels.triton_forward import hstu_attention_forward_kernel  # noqa: E402
from kernels.triton_launch import backward_configs, forward_configs  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
INT_ARGUMENTS = {"num_heads", "max_seq_len", "contextual_len", "num_buckets", "length_bucket", "position_slots",
                 "time_slots"}
FLOAT_ARGUMENTS = {"scale", "inv_max_seq_len"}
FEATURES = dict(HEAD_DIM_QK=64, HEAD_DIM_V=64, BLOCK_D_QK=64, BLOCK_D_V=64, HAS_TARGETS=True, HAS_CONTEXT=True,
                HAS_POSITION=True, HAS_TIME=True, BUCKET_FN=0, DOT_PRECISION="tf32", NEWTON_STEPS=2, SOFTMAX=False,
                CHUNK=128)


def signature(kernel, pointers: dict[str, str]) -> dict[str, str]:
    """Triton type of every argument: the given pointers, int32 strides and sizes, fp32 scalars."""
    types = {}
    for name in kernel.arg_names:
        if name in pointers:
            types[name] = pointers[name]
        elif name.startswith("stride") or name in INT_ARGUMENTS:
            types[name] = "i32"
        elif name in FLOAT_ARGUMENTS:
            types[name] = "fp32"
        else:
            types[name] = "constexpr"
    return types


def compile_kernel(kernel, pointers: dict[str, str], constants: dict[str, object], num_warps: int,
                   num_stages: int, survey: bool = False) -> str:
    compiled = triton.compile(
        ASTSource(fn=kernel, signature=signature(kernel, pointers), constexprs=constants),
        target=HOPPER, options={"num_warps": num_warps, "num_stages": num_stages},
    )
    uses_wgmma = "wgmma" in compiled.asm["ptx"]
    line = f"{kernel.__name__}: shared memory {compiled.metadata.shared} B, wgmma {uses_wgmma}"
    return f"{line}, {ptxas_resources(compiled.asm['ptx'])}" if survey else line


def ptxas_resources(ptx: str) -> str:
    """Registers and spills reported by ptxas -v (the bundled ptxas that understands Triton's PTX)."""
    folder = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    ptxas = next((os.path.join(folder, name) for name in ("ptxas-blackwell", "ptxas")
                  if os.path.exists(os.path.join(folder, name))), None)
    if ptxas is None:
        return "ptxas not found"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as source:
        source.write(ptx)
        source.flush()
        report = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", source.name, "-o", os.devnull],
                                capture_output=True, text=True).stderr
    return " ".join(line.split(":", 1)[-1].strip() for line in report.splitlines()
                    if "registers" in line or "spill" in line)


def pointer_types() -> tuple[dict[str, str], dict[str, str]]:
    """bf16 data, int64 offsets/timestamps, fp32 tables and gradient accumulators."""
    data = "*bf16"
    common = dict(LOG_SUM_EXP="*fp32", SEQ_OFFSETS="*i64", NUM_TARGETS="*i64", POSITION_WEIGHTS="*fp32", TIME_WEIGHTS="*fp32",
                  QUERY_TIME="*i64", KEY_TIME="*i64", WORK="*i32")
    forward = {**common, **{name: data for name in ("Q", "K", "V", "OUT")}}
    backward = {**common, **{name: data for name in ("Q", "K", "V", "DOUT", "DK", "DV")},
                "DQ": "*fp32", "DELTA": "*fp32", "POSITION_GRAD_PARTIAL": "*fp32", "TIME_GRAD_PARTIAL": "*fp32"}
    return forward, backward


def survey() -> None:
    forward, backward = pointer_types()
    for features_on in (False, True):
        switches = {name: features_on for name in ("HAS_TARGETS", "HAS_CONTEXT", "HAS_POSITION", "HAS_TIME")}
        constants = {**FEATURES, **switches, "POSITION_GRAD": features_on, "TIME_GRAD": features_on}
        for kernel, pointers, configs in ((hstu_attention_forward_kernel, forward, forward_configs()),
                                          (hstu_attention_backward_kernel, backward, backward_configs())):
            for config in configs:
                used = {name: value for name, value in constants.items() if name in kernel.arg_names}
                line = compile_kernel(kernel, pointers, {**used, **config.kwargs}, config.num_warps,
                                      config.num_stages, survey=True)
                print(f"features={features_on} {config}: {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", action="store_true", help="compile every autotune config and report spills")
    if parser.parse_args(argv).survey:
        survey()
        return 0
    forward, backward = pointer_types()
    for softmax in (False, True):
        features = {**FEATURES, "SOFTMAX": softmax}
        # The smallest tuned shapes: they exercise the same lowering and compile fastest.
        print(compile_kernel(hstu_attention_forward_kernel, forward,
                             {**features, "BLOCK_M": 64, "BLOCK_N": 32}, num_warps=4, num_stages=2))
        print(compile_kernel(hstu_attention_backward_kernel, backward,
                             {**features, "POSITION_GRAD": True, "TIME_GRAD": True, "BLOCK_M": 16, "BLOCK_N": 64},
                             num_warps=4, num_stages=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
