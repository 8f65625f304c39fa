"""Triton device helpers shared by the HSTU attention forward and backward kernels.

Everything that must agree bit-for-bit between the two passes lives here, so the backward
recomputes exactly the scores the forward used: the visibility mask, the in-kernel relative
attention bias rab^{p,t} (paper Eq. 2, Appendix G) and the SiLU pieces. The semantics being
reproduced are the ones written in ``kernels/attention.py``; the PyTorch oracle is
``kernels/reference.py``.

Index arithmetic is int32 (positions inside one sequence); only the time gap between two epoch
timestamps is int64, because absolute seconds overflow int32 differences.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from kernels.bias import LOG_BUCKET_DIVISOR

# floor(ln(x) / 0.301) is evaluated as log2(x) * (ln 2 / 0.301): lg2 is the one transcendental
# the GPU has in hardware, and the product replaces a division. It can differ from the PyTorch
# reference in the last float32 bit, so a gap whose value sits within ~1e-5 of a bucket
# boundary may land in the neighbouring bucket (tests draw timestamps away from boundaries).
LOG2_TO_LOG_BUCKET = tl.constexpr(math.log(2.0) / LOG_BUCKET_DIVISOR)
# BUCKET_FN values (kernels/triton_launch.py maps 'log' and 'sqrt' to them).
LOG_BUCKETS = tl.constexpr(0)
SQRT_BUCKETS = tl.constexpr(1)


@triton.jit
def visibility_mask(query, key, seq_len, history_end, contextual_len,
                    HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr):
    """May query i attend to key j (rules of kernels/attention.py).

    ``query`` and ``key`` are broadcastable int32 index tiles: [BM, 1] and [1, BN] give a
    [BM, BN] mask (forward), [1, BM] and [BN, 1] its transpose (backward).
    """
    if HAS_TARGETS or HAS_CONTEXT:
        in_history = (key >= contextual_len) & (key < history_end)
        # Targets (query >= history_end) see the whole history; history queries only their past.
        sees_history = in_history & ((key <= query) | (query >= history_end))
        visible = (key < contextual_len) | sees_history
        return (query == key) | (visible & (key < seq_len))
    else:
        # Plain causal: the diagonal is inside j <= i; rows past seq_len are never stored.
        return (key <= query) & (key < seq_len)


@triton.jit
def position_bias_index(query, key, history_end, max_seq_len):
    """int32 index into position_weights: p_j - p_i + N - 1 with p = min(index, history_end).

    Broadcastable index tiles as in :func:`visibility_mask`.
    """
    relative = tl.minimum(key, history_end) - tl.minimum(query, history_end) + (max_seq_len - 1)
    # The reference clamps too; it only matters for sequences longer than max_seq_len.
    return tl.minimum(tl.maximum(relative, 0), 2 * max_seq_len - 2)


@triton.jit
def time_bucket_index(query_time, key_time, num_buckets, BUCKET_FN: tl.constexpr):
    """int32 bucket of query_time - key_time (broadcastable int64 tiles), as bucketize_time_gaps."""
    gap = query_time - key_time  # int64: epoch seconds do not fit int32 gaps
    magnitude = tl.maximum(tl.abs(gap), 1).to(tl.float32)
    if BUCKET_FN == LOG_BUCKETS:
        bucket = tl.log2(magnitude) * LOG2_TO_LOG_BUCKET
    else:
        # Correctly rounded sqrt: perfect squares (gaps of 1, 4, 9 s...) must not drop a bucket.
        bucket = tl.sqrt_rn(magnitude)
    # Clamp while still float so huge gaps cannot overflow the integer conversion.
    return tl.minimum(bucket, num_buckets * 1.0).to(tl.int32)


@triton.jit
def gather_table(pointers, PTX: tl.constexpr):
    """fp32 table entries at a tile of pointers, loaded in the tile's own register layout.

    ``tl.load`` is a layout anchor: Triton gives a gather a blocked layout of its own and moves
    the result into the matmul's accumulator layout through shared memory, and in that blocked
    layout each thread also holds its own copy of every row vector the index needs (32 query
    times at 128-row tiles), which is what made every configuration spill. An element-wise load
    written in PTX is not an anchor, so the gather and its index arithmetic stay in the score
    tile's layout. PTX=False (the CPU interpreter, which cannot run PTX) uses tl.load: the same
    values. The read-only path (.nc) is safe: the tables do not change during a kernel.
    """
    tl.static_assert(pointers.dtype.element_ty == tl.float32, "bias tables must be fp32")
    if PTX:
        return tl.inline_asm_elementwise("ld.global.nc.f32 $0, [$1];", "=f,l", [pointers],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return tl.load(pointers)


@triton.jit
def scatter_add(pointers, values, PTX: tl.constexpr):
    """Relaxed fp32 atomic add of a tile of values at a tile of pointers, in the tile's layout.

    Every pointer must be valid: callers zero the values they mean to skip rather than mask
    them (adding 0.0 changes no sum). As in :func:`gather_table`, ``tl.atomic_add`` would move
    the tile, and keep its indices, in a layout of its own; the PTX ``red`` keeps both in the
    score tile's registers. Returns a dummy tile (inline PTX must produce a value).
    """
    if PTX:
        tl.static_assert(pointers.dtype.element_ty == tl.float32, "partial sums must be fp32")
        return tl.inline_asm_elementwise("red.relaxed.gpu.global.add.f32 [$1], $2;\n\tmov.b32 $0, 0;",
                                         "=r,l,f", [pointers, values], dtype=tl.int32, is_pure=False, pack=1)
    else:
        return tl.atomic_add(pointers, values, sem="relaxed")


@triton.jit
def add_relative_bias(scores, query, key, history_end, query_time, key_time, POSITION_WEIGHTS,
                      TIME_WEIGHTS, max_seq_len, num_buckets, HAS_POSITION: tl.constexpr,
                      HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr, PTX: tl.constexpr):
    """(scores + rab^{p,t}, position index, time bucket): the tables are gathered per element and
    the [N, N] bias never exists. The indices (placeholders when a part is off) let the backward
    scatter dS to the same entries."""
    relative = query
    bucket = key
    if HAS_POSITION:
        relative = position_bias_index(query, key, history_end, max_seq_len)
        scores += gather_table(POSITION_WEIGHTS + relative, PTX)
    if HAS_TIME:
        bucket = time_bucket_index(query_time, key_time, num_buckets, BUCKET_FN)
        scores += gather_table(TIME_WEIGHTS + bucket, PTX)
    return scores, relative, bucket


@triton.jit
def reciprocal(denominator, NEWTON_STEPS: tl.constexpr):
    """1 / denominator for denominator in [1, 2^126), on the FMA pipe instead of the SFU.

    SiLU needs exp and a division per score; both would run on the SFU (MUFU), 16 results per
    clock per SM on H100, which caps a d=64 forward near 500 TFLOP/s on its own. A bit-trick
    seed (5% error) and Newton steps y <- y (2 - d y) need only FMAs: relative error 7e-6
    after 2 steps (ample before rounding P to 16 bits), float32-exact (1.5e-7) after 3.
    """
    seed = (0x7EF311C3 - denominator.to(tl.int32, bitcast=True)).to(tl.float32, bitcast=True)
    result = seed * (2.0 - denominator * seed)
    for _ in tl.static_range(NEWTON_STEPS - 1):
        result = result * (2.0 - denominator * result)
    return result


@triton.jit
def sigmoid(x, NEWTON_STEPS: tl.constexpr):
    """fp32 logistic function 1 / (1 + e^-x).

    e^-x is capped at e^80 so the denominator stays finite for the reciprocal; below x = -80
    sigmoid is < 2e-35 either way.
    """
    return reciprocal(1.0 + tl.exp(tl.minimum(-x, 80.0)), NEWTON_STEPS)


@triton.jit
def load_rows(base, offs_rows, offs_cols, row_stride, num_rows, NUM_COLS: tl.constexpr,
              CHECK_ROWS: tl.constexpr, CHECK_COLS: tl.constexpr):
    """[R, C] tile of a row-major [rows, cols] slice; out-of-range entries read as 0."""
    pointers = base + offs_rows[:, None] * row_stride + offs_cols[None, :]
    if CHECK_ROWS and CHECK_COLS:
        mask = (offs_rows[:, None] < num_rows) & (offs_cols[None, :] < NUM_COLS)
        return tl.load(pointers, mask=mask, other=0.0)
    elif CHECK_ROWS:
        return tl.load(pointers, mask=offs_rows[:, None] < num_rows, other=0.0)
    elif CHECK_COLS:
        return tl.load(pointers, mask=offs_cols[None, :] < NUM_COLS, other=0.0)
    else:
        return tl.load(pointers)


@triton.jit
def sequence_of_program(pid, WORK, SEQ_OFFSETS, CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """(sequence, block start, sequence start, length) of a program; sequence is -1 for idle slots.

    WORK is the host's [pieces, 2] int32 table of (sequence, first row) CHUNK-row pieces (see
    kernels/triton_launch.py); a block smaller than CHUNK splits each piece into CHUNK // BLOCK
    consecutive programs.
    """
    piece = pid // (CHUNK // BLOCK)
    sequence = tl.load(WORK + 2 * piece)
    block_start = tl.load(WORK + 2 * piece + 1) + (pid % (CHUNK // BLOCK)) * BLOCK
    safe_sequence = tl.maximum(sequence, 0)
    seq_start = tl.load(SEQ_OFFSETS + safe_sequence).to(tl.int64)
    seq_len = (tl.load(SEQ_OFFSETS + safe_sequence + 1) - seq_start).to(tl.int32)
    return sequence, block_start, seq_start, seq_len
