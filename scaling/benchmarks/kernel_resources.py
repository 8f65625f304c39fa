"""Compile the attention kernels for a GPU that is not here, and read their resources.

Triton compiles for any NVIDIA target on a CPU machine: ``triton.compile`` lowers a kernel to
PTX and runs the ptxas of the Triton wheel to a cubin, without a driver. This module compiles
every autotune configuration of the HSTU forward and backward kernels (kernels/triton_launch.py)
for Hopper (sm_90) and Ampere (sm_80), in fp16 and bf16, with the features the models use
switched on (rab^{p,t} with both gradients, targets, a contextual prefix), and reads what the
hardware will see: registers per thread and spilled bytes (``ptxas -v``, run with the flags
Triton itself passes, so the numbers are those of the cubin Triton built), shared memory per
program and whether the matmuls became Hopper wgmma instructions.

A kernel that spills keeps part of its tile in local memory (L1/L2) and reloads it in the inner
loop; one whose shared memory exceeds the target's per-block limit cannot launch. Both are
visible here without a GPU. Numbers are facts of the compiler, not timings: a configuration
that fits may still lose the autotuning on a GPU.

This runs real compilation, so the process must not have ``TRITON_INTERPRET=1`` set (the
interpreter replaces ``@triton.jit`` functions at import time).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

TARGET_CAPABILITIES = {"sm_90": 90, "sm_80": 80}
# Dynamic shared memory one block may use (CUDA occupancy tables): 227 KiB on H100/H200,
# 163 KiB on A100.
SHARED_MEMORY_LIMIT = {"sm_90": 232448, "sm_80": 166912}
DTYPES = ("bf16", "fp16")
KERNELS = ("forward", "backward")
ACTIVATIONS = ("silu", "softmax")
HEAD_DIM = 64  # d_qk = d_v of the paper's HSTU layers (and the targets)

INT_ARGUMENTS = {"num_heads", "max_seq_len", "contextual_len", "num_buckets", "length_bucket", "position_slots",
                 "time_slots"}
FLOAT_ARGUMENTS = {"scale", "inv_max_seq_len"}
DATA_POINTERS = {"forward": ("Q", "K", "V", "OUT"), "backward": ("Q", "K", "V", "DOUT", "DK", "DV")}
FP32_POINTERS = ("LOG_SUM_EXP", "POSITION_WEIGHTS", "TIME_WEIGHTS", "DQ", "DELTA", "POSITION_GRAD_PARTIAL",
                 "TIME_GRAD_PARTIAL")
INT_POINTERS = {"SEQ_OFFSETS": "*i64", "NUM_TARGETS": "*i64", "QUERY_TIME": "*i64", "KEY_TIME": "*i64",
                "WORK": "*i32"}

COLUMNS = ("kernel", "activation", "config", "target", "dtype", "registers", "spill_stores", "spill_loads",
           "shared_bytes", "shared_limit", "wgmma")


@dataclass(frozen=True)
class KernelResources:
    """What one compiled (kernel, configuration, target, dtype) needs from the hardware."""

    kernel: str  # 'forward' or 'backward'
    activation: str  # 'silu' or 'softmax'
    config: str  # BLOCK_MxBLOCK_N/warps/stages, e.g. '128x64/w8/s3'
    target: str  # 'sm_90' or 'sm_80'
    dtype: str  # 'bf16' or 'fp16'
    registers: int  # per thread; 255 is the hardware maximum
    spill_stores: int  # bytes per thread written to local memory for lack of registers
    spill_loads: int  # bytes per thread read back
    shared_bytes: int  # dynamic shared memory per program
    shared_limit: int  # the target's per-block maximum
    wgmma: bool  # the matmuls use Hopper's warpgroup MMA (expected on sm_90 only)

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0

    @property
    def fits(self) -> bool:
        """No spill and shared memory within the target's limit."""
        return not self.spills and self.shared_bytes <= self.shared_limit

    def row(self) -> dict[str, object]:
        return asdict(self)


def config_name(config) -> str:
    """'BLOCK_MxBLOCK_N/wWARPS/sSTAGES' of a triton.Config."""
    return (f"{config.kwargs['BLOCK_M']}x{config.kwargs['BLOCK_N']}"
            f"/w{config.num_warps}/s{config.num_stages}")


def kernel_constants(kernel: str, activation: str, dtype: str, features: bool) -> dict[str, object]:
    """Compile-time switches: every feature on (or off), d = HEAD_DIM, the dtype's reciprocal steps."""
    import torch

    from kernels.triton_launch import dot_precision

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    constants: dict[str, object] = dict(
        HEAD_DIM_QK=HEAD_DIM, HEAD_DIM_V=HEAD_DIM, BLOCK_D_QK=HEAD_DIM, BLOCK_D_V=HEAD_DIM,
        HAS_TARGETS=features, HAS_CONTEXT=features, HAS_POSITION=features, HAS_TIME=features, BUCKET_FN=0,
        DOT_PRECISION=dot_precision(torch_dtype), NEWTON_STEPS=2, SOFTMAX=activation == "softmax", CHUNK=128,
        PTX=True,
    )
    if kernel == "backward":
        constants.update(POSITION_GRAD=features, TIME_GRAD=features)
    return constants


def signature(kernel_fn, kernel: str, dtype: str) -> dict[str, str]:
    """Triton type of every argument: data pointers in ``dtype``, fp32 tables and accumulators,
    int64 offsets and timestamps, int32 strides and sizes, fp32 scalars, the rest constexpr."""
    types = {}
    for name in kernel_fn.arg_names:
        if name in DATA_POINTERS[kernel]:
            types[name] = f"*{dtype}"
        elif name in FP32_POINTERS:
            types[name] = "*fp32"
        elif name in INT_POINTERS:
            types[name] = INT_POINTERS[name]
        elif name.startswith("stride") or name in INT_ARGUMENTS:
            types[name] = "i32"
        elif name in FLOAT_ARGUMENTS:
            types[name] = "fp32"
        else:
            types[name] = "constexpr"
    return types


def divisibility(kernel_fn, types: dict[str, str]) -> dict[tuple[int], list]:
    """The specialisation a real launch gets at d = 64: the JIT marks every 16-byte aligned pointer
    (all of torch's allocations) and every int divisible by 16 (each stride: H * 64 and 64) as
    such, which lets loads vectorise and K/V tiles be copied asynchronously. Scalar sizes are left
    unmarked, the conservative case."""
    return {(index,): [["tt.divisibility", 16]] for index, name in enumerate(kernel_fn.arg_names)
            if types[name].startswith("*") or name.startswith("stride")}


def kernel_and_configs(kernel: str, target: str = "sm_90") -> tuple[object, list]:
    """The @triton.jit function and the autotune configurations it may run with on ``target``."""
    from kernels.triton_backward import hstu_attention_backward_kernel
    from kernels.triton_forward import hstu_attention_forward_kernel
    from kernels.triton_launch import backward_configs, forward_configs

    if kernel == "forward":
        return hstu_attention_forward_kernel, forward_configs(TARGET_CAPABILITIES[target])
    return hstu_attention_backward_kernel, backward_configs(TARGET_CAPABILITIES[target])


def compile_config(kernel: str, config, target: str, dtype: str, activation: str = "silu",
                   features: bool = True) -> KernelResources:
    """Compile one autotune configuration for ``target`` and read its resources."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel_fn, _ = kernel_and_configs(kernel)
    constants = {**kernel_constants(kernel, activation, dtype, features), **config.kwargs}
    types = signature(kernel_fn, kernel, dtype)
    compiled = triton.compile(
        ASTSource(fn=kernel_fn, signature=types, constexprs=constants, attrs=divisibility(kernel_fn, types)),
        target=GPUTarget("cuda", TARGET_CAPABILITIES[target], 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages},
    )
    registers, spill_stores, spill_loads = ptxas_report(compiled.asm["ptx"], target)
    return KernelResources(
        kernel=kernel, activation=activation, config=config_name(config), target=target, dtype=dtype,
        registers=registers, spill_stores=spill_stores, spill_loads=spill_loads,
        shared_bytes=int(compiled.metadata.shared), shared_limit=SHARED_MEMORY_LIMIT[target],
        wgmma="wgmma" in compiled.asm["ptx"],
    )


def ptxas_report(ptx: str, target: str) -> tuple[int, int, int]:
    """(registers, spill store bytes, spill load bytes) from ``ptxas -v`` on Triton's PTX.

    Runs the ptxas Triton uses for the target with the flags Triton passes it (line info, FMA
    fusion, --regAllocOptLevel=2), so the allocation is the one of the cubin Triton built.
    """
    from triton.backends.nvidia.compiler import get_ptxas

    capability = TARGET_CAPABILITIES[target]
    arch = "sm_90a" if capability == 90 else f"sm_{capability}"
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "kernel.ptx")
        with open(source, "w") as handle:
            handle.write(ptx)
        command = [get_ptxas(capability).path, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={arch}",
                   source, "-o", os.path.join(folder, "kernel.cubin")]
        report = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    registers = re.search(r"Used (\d+) registers", report)
    stores = re.search(r"(\d+) bytes spill stores", report)
    loads = re.search(r"(\d+) bytes spill loads", report)
    if registers is None or stores is None or loads is None:
        raise RuntimeError(f"unexpected ptxas -v report: {report!r}")
    return int(registers.group(1)), int(stores.group(1)), int(loads.group(1))


def survey(kernels: Iterable[str] = KERNELS, targets: Iterable[str] = tuple(TARGET_CAPABILITIES),
           dtypes: Iterable[str] = DTYPES, activations: Iterable[str] = ("silu",), features: bool = True,
           progress: Callable[[KernelResources], None] | None = None) -> list[KernelResources]:
    """Resources of every autotune configuration of ``kernels`` for each target, dtype and activation."""
    rows = []
    for resources in _compile_all(tuple(kernels), tuple(targets), tuple(dtypes), tuple(activations), features):
        rows.append(resources)
        if progress is not None:
            progress(resources)
    return rows


def _compile_all(kernels: tuple[str, ...], targets: tuple[str, ...], dtypes: tuple[str, ...],
                 activations: tuple[str, ...], features: bool) -> Iterator[KernelResources]:
    for activation in activations:
        for kernel in kernels:
            for target in targets:
                _, configs = kernel_and_configs(kernel, target)
                for dtype in dtypes:
                    for config in configs:
                        yield compile_config(kernel, config, target, dtype, activation, features)
