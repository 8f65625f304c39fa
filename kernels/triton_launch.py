"""Host-side launch glue shared by the Triton HSTU attention forward and backward: the problem
description, the jagged work table and the tuning configs.

Jagged work table
    A jagged batch is cut into CHUNK-token pieces per sequence (``WORK_CHUNK`` = 128, the largest
    block size any config uses). The table lists, for every piece, its sequence and its start row
    inside that sequence; a kernel whose block is smaller than CHUNK runs CHUNK // BLOCK programs
    per piece. So one table serves every autotuning config, programs never straddle two
    sequences, and at most CHUNK // BLOCK - 1 programs per sequence find nothing to do (versus a
    [B, max_len / BLOCK] grid, which idles on every short sequence of a skewed batch).

    The table is built on the device from ``offsets`` without a host synchronisation: its length
    is the upper bound ``T // CHUNK + B`` (sum of ceil(n_b / CHUNK) never exceeds it) and unused
    slots carry sequence -1. Pieces are sorted by decreasing work (longest-processing-time-first)
    so that the heavy causal blocks of long sequences start in the first wave and the short ones
    fill the tail; the forward's work grows with the block's end row, the backward's (which walks
    the queries after a key block) with the rows left after the block's start. Both orders are
    built once per forward call (a few small device ops) and kept for the backward.

Tuning
    Block sizes, warps and pipeline stages are chosen by ``triton.autotune`` keyed on the head
    dims and a power-of-two length bucket of ``max_seq_len`` (the configured N: known on the host
    without reading lengths back from the GPU). Under ``TRITON_INTERPRET=1`` (CPU tensors) a
    single tiny config is used so that tests stay fast and still cross block boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

WORK_CHUNK = 128  # rows per work-table entry; every config's block sizes divide it
INTERPRETER_CHUNK = 32  # interpreter chunk: two 16-row programs per entry exercise the split
INTERPRETER_BLOCK = 16  # BLOCK_M = BLOCK_N under TRITON_INTERPRET=1: small, still several per sequence


@dataclass(frozen=True)
class AttentionProblem:
    """Everything both passes need, already checked and made contiguous by kernels/triton_attention.py."""

    q: Tensor  # [T, H, Dqk]
    k: Tensor  # [T, H, Dqk]
    v: Tensor  # [T, H, Dv]
    offsets: Tensor  # [B+1] int64
    num_targets: Tensor | None  # [B] integer, or None: no candidates
    position_weights: Tensor | None  # [2 * max_seq_len - 1]
    time_weights: Tensor | None  # [num_buckets + 1]
    query_timestamps: Tensor | None  # [T] integer seconds; set iff time_weights is
    key_timestamps: Tensor | None  # [T] integer seconds; set iff time_weights is
    bucket_fn: str  # 'log' or 'sqrt'
    max_seq_len: int  # N of the semantics: SiLU(.) / N and the position table's size
    scale: float  # multiplies q k^T before the bias is added
    contextual_len: int  # prefix tokens every token sees
    activation: str = "silu"  # 'silu' (HSTU, SiLU(.) / N) or 'softmax'

    @property
    def interpreted(self) -> bool:
        """CPU tensors can only run under TRITON_INTERPRET=1, which gets the tiny fixed config."""
        return self.q.device.type != "cuda"

    @property
    def num_buckets(self) -> int:
        return 0 if self.time_weights is None else self.time_weights.numel() - 1


def kernel_flags(problem: AttentionProblem) -> dict[str, object]:
    """Compile-time switches shared by both kernels: each absent feature costs nothing."""
    return {
        "HEAD_DIM_QK": problem.q.shape[2],
        "HEAD_DIM_V": problem.v.shape[2],
        "BLOCK_D_QK": head_dim_block(problem.q.shape[2]),
        "BLOCK_D_V": head_dim_block(problem.v.shape[2]),
        "HAS_TARGETS": problem.num_targets is not None,
        "HAS_CONTEXT": problem.contextual_len > 0,
        "HAS_POSITION": problem.position_weights is not None,
        "HAS_TIME": problem.time_weights is not None,
        "BUCKET_FN": 0 if problem.bucket_fn == "log" else 1,
        "DOT_PRECISION": dot_precision(problem.q.dtype),
        # Reciprocal accuracy in SiLU: float32-exact for fp32 inputs, 7e-6 (far below the
        # 16-bit rounding of P and dS) otherwise.
        "NEWTON_STEPS": 3 if problem.q.dtype == torch.float32 else 2,
        "SOFTMAX": problem.activation == "softmax",
        # Bias gathers and scatters in inline PTX (kernels/triton_helpers.py), which the CPU
        # interpreter cannot run.
        "PTX": not problem.interpreted,
    }


def placeholder(problem: AttentionProblem, tensor: Tensor | None) -> Tensor:
    """A real pointer for an absent optional input; the kernel never reads it (its flag is off)."""
    return problem.offsets if tensor is None else tensor


@dataclass(frozen=True)
class WorkTables:
    """Per-program (sequence, start row) pieces of a jagged batch, heaviest first, for both passes."""

    forward: Tensor  # [C, 2] int32 (sequence, first row); sequence -1 marks an idle slot
    backward: Tensor  # [C, 2] int32, the same pieces in the backward's work order
    chunk: int  # rows per piece

    @property
    def pieces(self) -> int:
        return self.forward.shape[0]


def build_work_tables(offsets: Tensor, total_tokens: int, chunk: int) -> WorkTables:
    """Cut every sequence into ``chunk``-row pieces and order them for each pass.

    A handful of small device ops, no host synchronisation; built once per forward and kept
    for the backward.
    """
    num_sequences = offsets.numel() - 1
    lengths = offsets[1:] - offsets[:-1]  # [B]
    pieces_per_sequence = torch.div(lengths + (chunk - 1), chunk, rounding_mode="floor")  # [B]
    pieces_end = torch.cumsum(pieces_per_sequence, 0)  # [B] exclusive end of each sequence's pieces
    capacity = total_tokens // chunk + num_sequences
    slot = torch.arange(capacity, device=offsets.device, dtype=pieces_end.dtype)  # [C]
    sequence = torch.searchsorted(pieces_end, slot, right=True)  # [C]; == B for idle slots
    # One extra zero-length "sequence" absorbs idle slots without clamping.
    first_piece = torch.cat([pieces_end - pieces_per_sequence, pieces_end.new_zeros(1)])  # [B+1]
    length = torch.cat([lengths, lengths.new_zeros(1)])[sequence]  # [C], 0 when idle
    start = (slot - first_piece[sequence]) * chunk  # [C]
    # Work of a piece: the forward scans keys up to the block's end, the backward the queries
    # from its start on. Idle slots score <= 0, real pieces >= 1, so idle slots sort last.
    forward_work = torch.minimum(start + chunk, length)
    backward_work = length - start
    table = torch.stack([torch.where(sequence == num_sequences, -1, sequence), start], 1).to(torch.int32)
    return WorkTables(
        forward=table[torch.argsort(forward_work, descending=True, stable=True)],
        backward=table[torch.argsort(backward_work, descending=True, stable=True)],
        chunk=chunk,
    )


def length_bucket(max_seq_len: int) -> int:
    """Autotune key for sequence length: the next power of two of N, at least 32."""
    return max(32, triton.next_power_of_2(max_seq_len))


def head_dim_block(head_dim: int) -> int:
    """Register width of a head dim: a power of two, at least 16 (the smallest tl.dot operand)."""
    return max(16, triton.next_power_of_2(head_dim))


def forward_configs(capability: int = 90) -> list[triton.Config]:
    """Forward (BLOCK_M queries x BLOCK_N keys) candidates for a GPU of compute ``capability``.

    Large query blocks amortise the q tile over more keys; BLOCK_N trades registers for
    pipelining depth (num_stages) of the K/V loads; 8 warps (two warpgroups) pair with 128-row
    tiles. Every candidate compiles without register spills for sm_90 and sm_80 in bf16 and
    fp16 with every feature on, SiLU and softmax (``scaling bench kernels``;
    tests/kernels/test_compile.py). Pruned
    for spilling: 128x128/w8 (64 scores per thread), 128x32/w4 (32 per thread with four warps;
    the same tile with eight fits) and 64x32/w4 (a few bytes on sm_80 at any depth).
    """
    del capability  # the same candidates fit both targets
    return _configs([(128, 64, 8, 3), (128, 64, 8, 4), (128, 32, 8, 4), (64, 64, 4, 3)])


def backward_configs(capability: int = 90) -> list[triton.Config]:
    """Backward (BLOCK_N keys held in registers x BLOCK_M queries streamed) candidates.

    The key block holds the dK and dV accumulators, so it is the large side (as in
    FlashAttention-2's dK/dV pass); query blocks are small to keep the per-tile operands in
    registers. Checked like the forward list. Ampere's mma keeps both k and v tiles in registers
    for the whole loop, so it gets only the 16-query blocks; Hopper's wgmma reads them from
    shared memory and fits 32-query blocks too (at two stages: three spill 12 B in softmax).
    Pruned for spilling on both: 64x128/w8 and 32x64/w4.
    """
    shapes = [(16, 128, 8, 3), (16, 128, 8, 2)]
    if capability >= 90:
        shapes += [(32, 128, 8, 2), (32, 64, 8, 3), (16, 64, 4, 4)]
    return _configs(shapes)


def _configs(shapes: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=warps, num_stages=stages)
        for m, n, warps, stages in shapes
    ]


def config_pruner(configs_for: Callable[[int], list[triton.Config]]) -> Callable[..., list[triton.Config]]:
    """An autotuner ``early_config_prune`` keeping the candidates ``configs_for`` lists for the
    device the kernel runs on (the union of all targets' lists is the autotuner's config list)
    whose blocks also fit the length bucket (larger ones would mostly compute padding)."""

    def prune(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        device = named_args["Q"].device
        capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else (9, 0)
        allowed = {_config_key(config) for config in configs_for(capability[0] * 10 + capability[1])}
        for_device = [config for config in configs if _config_key(config) in allowed] or configs
        bucket = named_args.get("length_bucket", kwargs.get("length_bucket", WORK_CHUNK))
        fitting = [config for config in for_device
                   if max(config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]) <= bucket]
        return fitting or for_device

    return prune


def _config_key(config: triton.Config) -> tuple[int, int, int, int]:
    return config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_warps, config.num_stages


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot input precision: full fp32 for fp32 inputs (tf32 would lose ~3 digits), native otherwise."""
    return "ieee" if dtype == torch.float32 else "tf32"
