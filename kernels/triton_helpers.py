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
LOG2_TO_LOG_BUCKET: tl.constexpr = math.log(2.0) / LOG_BUCKET_DIVISOR
LOG_BUCKETS: tl.constexpr = 0
SQRT_BUCKETS: tl.constexpr = 1


@triton.jit
def visibility_mask(offs_m, offs_n, seq_len, history_end, contextual_len,
                    HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr):
    """[BM, BN] bool: may query ``offs_m`` attend to key ``offs_n`` (rules of kernels/attention.py)."""
    query = offs_m[:, None]
    key = offs_n[None, :]
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
def position_bias_index(offs_m, offs_n, history_end, max_seq_len):
    """[BM, BN] int32 index into position_weights: p_j - p_i + N - 1 with p = min(index, history_end)."""
    query_position = tl.minimum(offs_m, history_end)
    key_position = tl.minimum(offs_n, history_end)
    relative = key_position[None, :] - query_position[:, None] + (max_seq_len - 1)
    # The reference clamps too; it only matters for sequences longer than max_seq_len.
    return tl.minimum(tl.maximum(relative, 0), 2 * max_seq_len - 2)


@triton.jit
def time_bucket_index(query_time, key_time, num_buckets, BUCKET_FN: tl.constexpr):
    """[BM, BN] int32 bucket of query_time[i] - key_time[j], as kernels.bias.bucketize_time_gaps."""
    gap = query_time[:, None] - key_time[None, :]  # int64: epoch seconds do not fit int32 gaps
    magnitude = tl.maximum(tl.abs(gap), 1).to(tl.float32)
    if BUCKET_FN == LOG_BUCKETS:
        bucket = tl.log2(magnitude) * LOG2_TO_LOG_BUCKET
    else:
        # Correctly rounded sqrt: perfect squares (gaps of 1, 4, 9 s...) must not drop a bucket.
        bucket = tl.sqrt_rn(magnitude)
    # Clamp while still float so huge gaps cannot overflow the integer conversion.
    return tl.minimum(bucket, num_buckets * 1.0).to(tl.int32)


@triton.jit
def scores_with_bias(q, k, scale, offs_m, offs_n, history_end, query_time, key_time,
                     POSITION_WEIGHTS, TIME_WEIGHTS, max_seq_len, num_buckets,
                     HAS_POSITION: tl.constexpr, HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr,
                     DOT_PRECISION: tl.constexpr):
    """[BM, BN] fp32 S = scale * q k^T + rab^{p,t}; the bias tables are gathered, never materialised."""
    scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
    if HAS_POSITION:
        relative = position_bias_index(offs_m, offs_n, history_end, max_seq_len)
        scores += tl.load(POSITION_WEIGHTS + relative).to(tl.float32)
    if HAS_TIME:
        bucket = time_bucket_index(query_time, key_time, num_buckets, BUCKET_FN)
        scores += tl.load(TIME_WEIGHTS + bucket).to(tl.float32)
    return scores


@triton.jit
def sigmoid(x):
    """fp32 logistic function; exp overflows to inf for very negative x, giving an exact 0."""
    return 1.0 / (1.0 + tl.exp(-x))


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
def sequence_of_program(pid, WORK_SEQUENCE, WORK_START, SEQ_OFFSETS, CHUNK: tl.constexpr,
                        BLOCK: tl.constexpr):
    """(sequence, block start, sequence start, length) of a program; sequence is -1 for idle slots.

    The host table lists CHUNK-sized pieces of every sequence (see kernels/triton_launch.py);
    a block size smaller than CHUNK splits each piece into CHUNK // BLOCK consecutive programs.
    """
    chunk = pid // (CHUNK // BLOCK)
    sequence = tl.load(WORK_SEQUENCE + chunk)
    block_start = tl.load(WORK_START + chunk) + (pid % (CHUNK // BLOCK)) * BLOCK
    safe_sequence = tl.maximum(sequence, 0)
    seq_start = tl.load(SEQ_OFFSETS + safe_sequence).to(tl.int64)
    seq_len = (tl.load(SEQ_OFFSETS + safe_sequence + 1) - seq_start).to(tl.int32)
    return sequence, block_start, seq_start, seq_len
