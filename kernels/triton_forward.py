"""Triton forward of HSTU jagged attention: out = (SiLU(scale q k^T + rab^{p,t}) / N, masked) v.

Design (FlashAttention-style tiling over a jagged batch, paper Section 3.2 and Appendix G):

* One program owns BLOCK_M query rows of one sequence and one head and walks that sequence's
  keys in BLOCK_N tiles, accumulating the [BLOCK_M, Dv] output in fp32 registers. The N x N
  score matrix exists only one tile at a time. Programs come from the jagged work table of
  kernels/triton_launch.py, so work is proportional to sum_i n_i^2 / 2, not B * max_len^2.
  The program index is head-fastest: the heaviest blocks of all heads start in the first wave.
* Pointwise SiLU needs no running max or normaliser, so tiles are independent and the 1/N
  factor is applied once to the accumulator at the end. ``activation="softmax"`` (compile-time
  SOFTMAX) uses FlashAttention-2's online softmax instead (running row max and sum, rescaled
  accumulator) and also writes each row's log-sum-exp for the backward.
* Key tiles fall into three ranges per query block: fully visible tiles with no mask and no
  bounds checks (the bulk of the work); tiles cut by the causal diagonal, the sequence end, the
  contextual prefix or the history/target boundary, which evaluate the mask; and fully masked
  tiles, which are skipped: keys after the diagonal and the targets that precede the block
  (candidates only see themselves).
* rab^{p,t} is gathered per tile from the tiny position/time tables (kernels/triton_helpers.py);
  the tables stay in L1/L2, the [N, N] bias is never built.
* Both matmuls run with fp32 accumulation (tl.dot); P is cast to the value dtype before P V as
  in FlashAttention. fp32 inputs use IEEE fp32 dots, not tf32.
* Element-wise budget: at d=64 a score costs 256 forward FLOPs of tensor-core work, so the
  per-score SiLU must be cheap. exp runs on the SFU (16/clk/SM on H100); the division of the
  sigmoid is done by Newton steps on the FMA pipe (``reciprocal`` in kernels/triton_helpers.py)
  instead of a second SFU op, which would by itself cap the forward near 500 TFLOP/s.
* Block sizes, warps and stages are autotuned (kernels/triton_launch.py); position arithmetic in
  the loop is int32, with one int64 sequence base offset per program.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.triton_helpers import add_relative_bias, load_rows, sequence_of_program, sigmoid, visibility_mask
from kernels.triton_launch import (
    INTERPRETER_BLOCK,
    AttentionProblem,
    WorkTables,
    config_pruner,
    forward_configs,
    kernel_flags,
    length_bucket,
    placeholder,
)


@triton.jit
def _forward_tile(acc, row_max, row_sum, q, start_n, k_base, v_base, key_time_base, stride_kt, stride_vt,
                  offs_m, seq_len, history_end, contextual_len, query_time, POSITION_WEIGHTS,
                  TIME_WEIGHTS, scale, max_seq_len, num_buckets,
                  HEAD_DIM_QK: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D_QK: tl.constexpr,
                  BLOCK_D_V: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
                  HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr, HAS_POSITION: tl.constexpr,
                  HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr, DOT_PRECISION: tl.constexpr,
                  NEWTON_STEPS: tl.constexpr, SOFTMAX: tl.constexpr, PTX: tl.constexpr):
    """Fold one key tile into (acc [BM, Dv], row_max [BM], row_sum [BM]).

    SiLU: acc += (SiLU(S) masked) v, the row statistics pass through. Softmax: the online
    update of FlashAttention-2. MASKED=False tiles are known to be fully visible.
    """
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k = load_rows(k_base, offs_n, tl.arange(0, BLOCK_D_QK), stride_kt, seq_len, HEAD_DIM_QK,
                  MASKED, BLOCK_D_QK != HEAD_DIM_QK)  # [BN, Dqk]
    scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale  # [BM, BN]
    key_time = offs_n[None, :]
    if HAS_TIME:
        key_time = tl.load(key_time_base + offs_n, mask=offs_n < seq_len, other=0)[None, :]
    scores, _, _ = add_relative_bias(scores, offs_m[:, None], offs_n[None, :], history_end, query_time,
                                     key_time, POSITION_WEIGHTS, TIME_WEIGHTS, max_seq_len, num_buckets,
                                     HAS_POSITION, HAS_TIME, BUCKET_FN, PTX)
    v = load_rows(v_base, offs_n, tl.arange(0, BLOCK_D_V), stride_vt, seq_len, HEAD_DIM_V,
                  MASKED, BLOCK_D_V != HEAD_DIM_V)  # [BN, Dv]
    if SOFTMAX:
        if MASKED:
            allowed = visibility_mask(offs_m[:, None], offs_n[None, :], seq_len, history_end,
                                      contextual_len, HAS_TARGETS, HAS_CONTEXT)
            scores = tl.where(allowed, scores, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        # A row with nothing visible yet keeps max -inf; subtract 0 so exp gives 0, not NaN.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        weights = tl.exp(scores - shift[:, None])
        rescale = tl.exp(row_max - shift)
        row_sum = row_sum * rescale + tl.sum(weights, 1)
        acc = acc * rescale[:, None]
        row_max = new_max
    else:
        weights = scores * sigmoid(scores, NEWTON_STEPS)  # SiLU; 1/N is applied to the accumulator
        if MASKED:
            allowed = visibility_mask(offs_m[:, None], offs_n[None, :], seq_len, history_end,
                                      contextual_len, HAS_TARGETS, HAS_CONTEXT)
            weights = tl.where(allowed, weights, 0.0)
    acc = tl.dot(weights.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    return acc, row_max, row_sum


@triton.jit
def _forward_key_ranges(block_start, seq_len, history_end, contextual_len,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Key tile bounds for one query block: [0, full_end) unmasked, [full_end, cut_end) and
    [target_start, key_end) masked; keys in between are targets before the block (invisible)."""
    key_end = tl.minimum(seq_len, tl.maximum(block_start + BLOCK_M, contextual_len))
    # Keys every row of the block sees: the prefix, and history keys up to the block's first row.
    fully_visible = tl.maximum(tl.minimum(contextual_len, seq_len),
                               tl.minimum(history_end, block_start + 1))
    full_end = (fully_visible // BLOCK_N) * BLOCK_N
    # Keys at or after max(prefix, history) are targets: visible to themselves only.
    non_target_end = tl.minimum(key_end, tl.maximum(contextual_len, history_end))
    cut_end = tl.maximum(full_end, tl.cdiv(non_target_end, BLOCK_N) * BLOCK_N)
    target_start = tl.maximum(cut_end, (block_start // BLOCK_N) * BLOCK_N)
    return full_end, cut_end, target_start, key_end


@triton.jit
def hstu_attention_forward_kernel(
    Q, K, V, OUT, LOG_SUM_EXP, SEQ_OFFSETS, NUM_TARGETS, POSITION_WEIGHTS, TIME_WEIGHTS, QUERY_TIME,
    KEY_TIME, WORK,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    num_heads, scale, inv_max_seq_len, max_seq_len, contextual_len, num_buckets, length_bucket,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D_QK: tl.constexpr,
    BLOCK_D_V: tl.constexpr, HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr,
    HAS_POSITION: tl.constexpr, HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr,
    DOT_PRECISION: tl.constexpr, NEWTON_STEPS: tl.constexpr, SOFTMAX: tl.constexpr, PTX: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One (query block, head) of the jagged batch; length_bucket only keys the autotuner.

    LOG_SUM_EXP [T, H] fp32 receives each row's log-sum-exp when SOFTMAX (unused for SiLU).
    """
    pid = tl.program_id(0)
    head = pid % num_heads
    sequence, block_start, seq_start, seq_len = sequence_of_program(
        pid // num_heads, WORK, SEQ_OFFSETS, CHUNK, BLOCK_M)
    if (sequence >= 0) & (block_start < seq_len):
        history_end = seq_len
        if HAS_TARGETS:
            history_end = seq_len - tl.load(NUM_TARGETS + sequence).to(tl.int32)
        offs_m = block_start + tl.arange(0, BLOCK_M)
        q = load_rows(Q + seq_start * stride_qt + head * stride_qh, offs_m, tl.arange(0, BLOCK_D_QK),
                      stride_qt, seq_len, HEAD_DIM_QK, True, BLOCK_D_QK != HEAD_DIM_QK)  # [BM, Dqk]
        query_time = offs_m[:, None]  # [BM, 1]
        if HAS_TIME:
            query_time = tl.load(QUERY_TIME + seq_start + offs_m, mask=offs_m < seq_len, other=0)[:, None]
        k_base = K + seq_start * stride_kt + head * stride_kh
        v_base = V + seq_start * stride_vt + head * stride_vh
        key_time_base = KEY_TIME + seq_start
        full_end, cut_end, target_start, key_end = _forward_key_ranges(
            block_start, seq_len, history_end, contextual_len, BLOCK_M, BLOCK_N)
        acc = tl.zeros([BLOCK_M, BLOCK_D_V], dtype=tl.float32)
        row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
        for start_n in range(0, full_end, BLOCK_N):
            acc, row_max, row_sum = _forward_tile(acc, row_max, row_sum, q, start_n, k_base, v_base, key_time_base, stride_kt, stride_vt,
                                offs_m, seq_len, history_end, contextual_len, query_time,
                                POSITION_WEIGHTS, TIME_WEIGHTS, scale, max_seq_len, num_buckets,
                                HEAD_DIM_QK, HEAD_DIM_V, BLOCK_D_QK, BLOCK_D_V, BLOCK_N, False,
                                HAS_TARGETS, HAS_CONTEXT, HAS_POSITION, HAS_TIME, BUCKET_FN,
                                DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        for start_n in range(full_end, cut_end, BLOCK_N):
            acc, row_max, row_sum = _forward_tile(acc, row_max, row_sum, q, start_n, k_base, v_base, key_time_base, stride_kt, stride_vt,
                                offs_m, seq_len, history_end, contextual_len, query_time,
                                POSITION_WEIGHTS, TIME_WEIGHTS, scale, max_seq_len, num_buckets,
                                HEAD_DIM_QK, HEAD_DIM_V, BLOCK_D_QK, BLOCK_D_V, BLOCK_N, True,
                                HAS_TARGETS, HAS_CONTEXT, HAS_POSITION, HAS_TIME, BUCKET_FN,
                                DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        for start_n in range(target_start, key_end, BLOCK_N):
            acc, row_max, row_sum = _forward_tile(acc, row_max, row_sum, q, start_n, k_base, v_base, key_time_base, stride_kt, stride_vt,
                                offs_m, seq_len, history_end, contextual_len, query_time,
                                POSITION_WEIGHTS, TIME_WEIGHTS, scale, max_seq_len, num_buckets,
                                HEAD_DIM_QK, HEAD_DIM_V, BLOCK_D_QK, BLOCK_D_V, BLOCK_N, True,
                                HAS_TARGETS, HAS_CONTEXT, HAS_POSITION, HAS_TIME, BUCKET_FN,
                                DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        offs_dv = tl.arange(0, BLOCK_D_V)
        out_pointers = (OUT + seq_start * stride_ot + head * stride_oh
                        + offs_m[:, None] * stride_ot + offs_dv[None, :])
        out_mask = (offs_m[:, None] < seq_len) & (offs_dv[None, :] < HEAD_DIM_V)
        if SOFTMAX:
            # Every existing row sees at least itself, so row_sum > 0 there.
            out = acc / row_sum[:, None]
            row_pointers = LOG_SUM_EXP + (seq_start + offs_m) * num_heads + head
            tl.store(row_pointers, row_max + tl.log(row_sum), mask=offs_m < seq_len)
        else:
            out = acc * inv_max_seq_len
        tl.store(out_pointers, out.to(OUT.dtype.element_ty), mask=out_mask)


_tuned_forward_kernel = triton.autotune(
    configs=forward_configs(),
    prune_configs_by={"early_config_prune": config_pruner(forward_configs)},
    key=["HEAD_DIM_QK", "HEAD_DIM_V", "length_bucket", "HAS_TARGETS", "HAS_CONTEXT", "HAS_POSITION",
         "HAS_TIME", "BUCKET_FN", "SOFTMAX"],
)(hstu_attention_forward_kernel)


def attention_forward(problem: AttentionProblem, tables: WorkTables | None) -> tuple[Tensor, Tensor | None]:
    """Output [T, H, Dv] (v's dtype) and, for softmax, the rows' log-sum-exp [T, H] fp32.

    ``tables`` may be None only for an empty batch.
    """
    q, k, v = problem.q, problem.k, problem.v
    total_tokens, num_heads = q.shape[0], q.shape[1]
    out = torch.empty_like(v)  # [T, H, Dv]
    softmax = problem.activation == "softmax"
    log_sum_exp = torch.empty(q.shape[:2], dtype=torch.float32, device=q.device) if softmax else None  # [T, H]
    if total_tokens == 0 or num_heads == 0:
        return out, log_sum_exp
    args = (
        q, k, v, out, placeholder(problem, log_sum_exp), problem.offsets,
        placeholder(problem, problem.num_targets),
        placeholder(problem, problem.position_weights), placeholder(problem, problem.time_weights),
        placeholder(problem, problem.query_timestamps), placeholder(problem, problem.key_timestamps),
        tables.forward,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1),
        num_heads, problem.scale, 1.0 / problem.max_seq_len, problem.max_seq_len,
        problem.contextual_len, problem.num_buckets, length_bucket(problem.max_seq_len),
    )
    flags = kernel_flags(problem)
    pieces, chunk = tables.pieces, tables.chunk
    if problem.interpreted:
        grid = (num_heads * pieces * (chunk // INTERPRETER_BLOCK),)
        hstu_attention_forward_kernel[grid](
            *args, **flags, CHUNK=chunk, BLOCK_M=INTERPRETER_BLOCK, BLOCK_N=INTERPRETER_BLOCK)
    else:
        def grid(meta: dict) -> tuple[int]:
            return (num_heads * pieces * (chunk // meta["BLOCK_M"]),)

        _tuned_forward_kernel[grid](*args, **flags, CHUNK=chunk)
    return out, log_sum_exp
