"""Triton backward of HSTU jagged attention: dq, dk, dv and the gradients of both rab tables.

Design (FlashAttention-2's key-block-stationary backward over a jagged batch):

* One program owns BLOCK_N keys of one sequence and one head, keeps their k, v tiles and fp32
  dk, dv accumulators in registers, and walks the query blocks that can see those keys. Per tile
  it recomputes S = scale q k^T + rab^{p,t} with the forward's own helpers, then

      P  = SiLU(S) / N          dV += P^T dO
      dP = dO V^T               dS  = dP * SiLU'(S) / N,  SiLU'(x) = s(x) (1 + x (1 - s(x)))
      dK += scale dS^T Q        dQ += scale dS K   (fp32 atomic add: other key blocks add too)

  Nothing of size N x N is stored; only q, k, v, offsets, timestamps and the tables were saved.
  Softmax (compile-time SOFTMAX) follows FlashAttention-2 instead: P = exp(S - LSE) from the
  forward's saved row log-sum-exp, dS = P * (dP - delta) with delta = rowsum(dO * O).
* Query ranges per key block mirror the forward's key ranges: prefix keys are seen by every query;
  history keys by queries at or after them; target keys by themselves only (one diagonal tile).
  Query tiles entirely past the diagonal and inside the sequence skip the mask and bounds checks.
* d rab is dS summed over heads and over every (i, j) that reads the same table entry. Each
  program scatters its tile's dS with fp32 atomic adds into a private slot of a partial-sum
  buffer (slot = program % slots, so concurrent programs rarely share addresses); the slots are
  summed afterwards. Entries that compete inside one tile (many pairs share a time bucket or a
  relative position) serialise in L2, so bias gradients cost extra time only when requested.
* Atomic fp32 accumulation (dq and the tables) is not bitwise deterministic across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels.triton_helpers import (
    add_relative_bias,
    load_rows,
    scatter_add,
    sequence_of_program,
    sigmoid,
    visibility_mask,
)
from kernels.triton_launch import (
    INTERPRETER_BLOCK,
    AttentionProblem,
    WorkTables,
    backward_configs,
    config_pruner,
    kernel_flags,
    length_bucket,
    placeholder,
)

PARTIAL_SUM_BUDGET = 2**22  # fp32 entries (16 MiB) per bias-gradient partial-sum buffer


@dataclass(frozen=True)
class AttentionGradients:
    """Gradients of jagged_attention's differentiable inputs (None where not requested)."""

    q: Tensor  # [T, H, Dqk]
    k: Tensor  # [T, H, Dqk]
    v: Tensor  # [T, H, Dv]
    position_weights: Tensor | None  # [2 * max_seq_len - 1]
    time_weights: Tensor | None  # [num_buckets + 1]


@triton.jit
def _backward_tile(dk, dv, k, v, start_m, q_base, do_base, dq_base, query_time_base, key_time,
                   log_sum_exp_base, delta_base, num_heads,
                   stride_qt, stride_dot, stride_dqt, offs_n, seq_len, history_end, contextual_len,
                   POSITION_WEIGHTS, TIME_WEIGHTS, position_grad_slot, time_grad_slot,
                   scale, inv_max_seq_len, max_seq_len, num_buckets,
                   HEAD_DIM_QK: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D_QK: tl.constexpr,
                   BLOCK_D_V: tl.constexpr, BLOCK_M: tl.constexpr, MASKED: tl.constexpr,
                   HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr, HAS_POSITION: tl.constexpr,
                   HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr, POSITION_GRAD: tl.constexpr,
                   TIME_GRAD: tl.constexpr, DOT_PRECISION: tl.constexpr, NEWTON_STEPS: tl.constexpr,
                   SOFTMAX: tl.constexpr, PTX: tl.constexpr):
    """Accumulate one query tile's contribution into (dk, dv), dq and the bias partial sums.

    Tiles are computed transposed, [BN keys, BM queries], so that P^T and dS^T come out of the
    element-wise math in the layout the dV and dK matmuls consume; only dQ needs dS^T transposed.
    """
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_dqk = tl.arange(0, BLOCK_D_QK)
    q = load_rows(q_base, offs_m, offs_dqk, stride_qt, seq_len, HEAD_DIM_QK,
                  MASKED, BLOCK_D_QK != HEAD_DIM_QK)  # [BM, Dqk]
    # Rows past the sequence read dO = 0, which zeroes their dS and P^T dO terms.
    grad_out = load_rows(do_base, offs_m, tl.arange(0, BLOCK_D_V), stride_dot, seq_len, HEAD_DIM_V,
                         MASKED, BLOCK_D_V != HEAD_DIM_V)  # [BM, Dv]
    query = offs_m[None, :]  # [1, BM]
    key = offs_n[:, None]  # [BN, 1]
    query_time = query
    if HAS_TIME:
        query_time = tl.load(query_time_base + offs_m, mask=offs_m < seq_len, other=0)[None, :]
    scores = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION) * scale  # S^T [BN, BM]
    scores, relative, bucket = add_relative_bias(
        scores, query, key, history_end, query_time, key_time, POSITION_WEIGHTS, TIME_WEIGHTS,
        max_seq_len, num_buckets, HAS_POSITION, HAS_TIME, BUCKET_FN, PTX)
    grad_weights = tl.dot(v, tl.trans(grad_out), input_precision=DOT_PRECISION)  # dP^T [BN, BM]
    if SOFTMAX:
        # Rows past the sequence get LSE = +inf, hence P = 0.
        row_lse = tl.load(log_sum_exp_base + offs_m * num_heads, mask=offs_m < seq_len, other=float("inf"))
        row_delta = tl.load(delta_base + offs_m * num_heads, mask=offs_m < seq_len, other=0.0)
        weights = tl.exp(scores - row_lse[None, :])  # P^T
        grad_scores = weights * (grad_weights - row_delta[None, :])  # dS^T
    else:
        gate = sigmoid(scores, NEWTON_STEPS)
        weights = scores * gate * inv_max_seq_len  # P^T
        grad_scores = grad_weights * (gate * (1.0 + scores * (1.0 - gate))) * inv_max_seq_len  # dS^T
    if MASKED:
        allowed = visibility_mask(query, key, seq_len, history_end, contextual_len, HAS_TARGETS, HAS_CONTEXT)
        weights = tl.where(allowed, weights, 0.0)
        grad_scores = tl.where(allowed, grad_scores, 0.0)
    dv = tl.dot(weights.to(grad_out.dtype), grad_out, dv, input_precision=DOT_PRECISION)
    grad_scores_low = grad_scores.to(q.dtype)
    dk = tl.dot(grad_scores_low, q, dk, input_precision=DOT_PRECISION)
    dq = tl.dot(tl.trans(grad_scores_low), k, input_precision=DOT_PRECISION) * scale  # [BM, Dqk]
    dq_pointers = dq_base + offs_m[:, None] * stride_dqt + offs_dqk[None, :]
    # Relaxed: these are pure accumulations, nothing reads them before the kernel ends.
    tl.atomic_add(dq_pointers, dq, mask=(offs_m[:, None] < seq_len) & (offs_dqk[None, :] < HEAD_DIM_QK),
                  sem="relaxed")
    # Disallowed pairs carry dS = 0 and in-range indices (both are clamped): adding them
    # changes no sum and needs no mask.
    if POSITION_GRAD:
        scatter_add(position_grad_slot + relative, grad_scores, PTX)
    if TIME_GRAD:
        scatter_add(time_grad_slot + bucket, grad_scores, PTX)
    return dk, dv


@triton.jit
def _backward_query_ranges(block_start, seq_len, history_end, contextual_len,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Query tile bounds for one key block: [query_start, full_start) masked, [full_start,
    full_end) unmasked, [full_end, query_end) masked."""
    block_end = block_start + BLOCK_N
    # Prefix keys are seen by every query; others only by queries at or after them.
    query_start = tl.where(block_start < contextual_len, 0, (block_start // BLOCK_M) * BLOCK_M)
    # A block made only of target keys is seen by those same rows (the diagonal) and nothing else.
    only_targets = block_start >= tl.maximum(contextual_len, history_end)
    query_end = tl.where(only_targets, tl.minimum(seq_len, block_end), seq_len)
    # Query tiles that see every key of the block, each row existing.
    full_start = tl.where(
        block_end <= tl.minimum(contextual_len, seq_len),
        query_start,
        tl.where(block_end <= history_end, tl.cdiv(block_end - 1, BLOCK_M) * BLOCK_M, query_end),
    )
    full_start = tl.minimum(tl.maximum(full_start, query_start), query_end)
    full_end = tl.maximum(full_start, tl.minimum((seq_len // BLOCK_M) * BLOCK_M, query_end))
    return query_start, full_start, full_end, query_end


@triton.jit
def hstu_attention_backward_kernel(
    Q, K, V, DOUT, DQ, DK, DV, LOG_SUM_EXP, DELTA, SEQ_OFFSETS, NUM_TARGETS, POSITION_WEIGHTS,
    TIME_WEIGHTS, QUERY_TIME, KEY_TIME, POSITION_GRAD_PARTIAL, TIME_GRAD_PARTIAL, WORK,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dqt, stride_dqh, stride_dkt, stride_dkh, stride_dvt, stride_dvh,
    num_heads, scale, inv_max_seq_len, max_seq_len, contextual_len, num_buckets,
    position_slots, time_slots, length_bucket,
    HEAD_DIM_QK: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D_QK: tl.constexpr,
    BLOCK_D_V: tl.constexpr, HAS_TARGETS: tl.constexpr, HAS_CONTEXT: tl.constexpr,
    HAS_POSITION: tl.constexpr, HAS_TIME: tl.constexpr, BUCKET_FN: tl.constexpr,
    POSITION_GRAD: tl.constexpr, TIME_GRAD: tl.constexpr, DOT_PRECISION: tl.constexpr,
    NEWTON_STEPS: tl.constexpr, SOFTMAX: tl.constexpr, PTX: tl.constexpr, CHUNK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One (key block, head) of the jagged batch; length_bucket only keys the autotuner.

    LOG_SUM_EXP and DELTA ([T, H] fp32) are only read when SOFTMAX.
    """
    pid = tl.program_id(0)
    head = pid % num_heads
    sequence, block_start, seq_start, seq_len = sequence_of_program(
        pid // num_heads, WORK, SEQ_OFFSETS, CHUNK, BLOCK_N)
    if (sequence >= 0) & (block_start < seq_len):
        history_end = seq_len
        if HAS_TARGETS:
            history_end = seq_len - tl.load(NUM_TARGETS + sequence).to(tl.int32)
        offs_n = block_start + tl.arange(0, BLOCK_N)
        offs_dqk = tl.arange(0, BLOCK_D_QK)
        offs_dv = tl.arange(0, BLOCK_D_V)
        k = load_rows(K + seq_start * stride_kt + head * stride_kh, offs_n, offs_dqk, stride_kt,
                      seq_len, HEAD_DIM_QK, True, BLOCK_D_QK != HEAD_DIM_QK)  # [BN, Dqk]
        v = load_rows(V + seq_start * stride_vt + head * stride_vh, offs_n, offs_dv, stride_vt,
                      seq_len, HEAD_DIM_V, True, BLOCK_D_V != HEAD_DIM_V)  # [BN, Dv]
        key_time = offs_n[:, None]  # [BN, 1]
        if HAS_TIME:
            key_time = tl.load(KEY_TIME + seq_start + offs_n, mask=offs_n < seq_len, other=0)[:, None]
        q_base = Q + seq_start * stride_qt + head * stride_qh
        do_base = DOUT + seq_start * stride_dot + head * stride_doh
        dq_base = DQ + seq_start * stride_dqt + head * stride_dqh
        query_time_base = QUERY_TIME + seq_start
        log_sum_exp_base = LOG_SUM_EXP + seq_start * num_heads + head
        delta_base = DELTA + seq_start * num_heads + head
        position_grad_slot = POSITION_GRAD_PARTIAL + (pid % position_slots) * (2 * max_seq_len - 1)
        time_grad_slot = TIME_GRAD_PARTIAL + (pid % time_slots) * (num_buckets + 1)
        query_start, full_start, full_end, query_end = _backward_query_ranges(
            block_start, seq_len, history_end, contextual_len, BLOCK_M, BLOCK_N)
        dk = tl.zeros([BLOCK_N, BLOCK_D_QK], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, BLOCK_D_V], dtype=tl.float32)
        for start_m in range(query_start, full_start, BLOCK_M):
            dk, dv = _backward_tile(
                dk, dv, k, v, start_m, q_base, do_base, dq_base, query_time_base, key_time,
                log_sum_exp_base, delta_base, num_heads,
                stride_qt, stride_dot, stride_dqt, offs_n, seq_len, history_end, contextual_len,
                POSITION_WEIGHTS, TIME_WEIGHTS, position_grad_slot, time_grad_slot,
                scale, inv_max_seq_len, max_seq_len, num_buckets, HEAD_DIM_QK, HEAD_DIM_V,
                BLOCK_D_QK, BLOCK_D_V, BLOCK_M, True, HAS_TARGETS, HAS_CONTEXT, HAS_POSITION,
                HAS_TIME, BUCKET_FN, POSITION_GRAD, TIME_GRAD, DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        for start_m in range(full_start, full_end, BLOCK_M):
            dk, dv = _backward_tile(
                dk, dv, k, v, start_m, q_base, do_base, dq_base, query_time_base, key_time,
                log_sum_exp_base, delta_base, num_heads,
                stride_qt, stride_dot, stride_dqt, offs_n, seq_len, history_end, contextual_len,
                POSITION_WEIGHTS, TIME_WEIGHTS, position_grad_slot, time_grad_slot,
                scale, inv_max_seq_len, max_seq_len, num_buckets, HEAD_DIM_QK, HEAD_DIM_V,
                BLOCK_D_QK, BLOCK_D_V, BLOCK_M, False, HAS_TARGETS, HAS_CONTEXT, HAS_POSITION,
                HAS_TIME, BUCKET_FN, POSITION_GRAD, TIME_GRAD, DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        for start_m in range(full_end, query_end, BLOCK_M):
            dk, dv = _backward_tile(
                dk, dv, k, v, start_m, q_base, do_base, dq_base, query_time_base, key_time,
                log_sum_exp_base, delta_base, num_heads,
                stride_qt, stride_dot, stride_dqt, offs_n, seq_len, history_end, contextual_len,
                POSITION_WEIGHTS, TIME_WEIGHTS, position_grad_slot, time_grad_slot,
                scale, inv_max_seq_len, max_seq_len, num_buckets, HEAD_DIM_QK, HEAD_DIM_V,
                BLOCK_D_QK, BLOCK_D_V, BLOCK_M, True, HAS_TARGETS, HAS_CONTEXT, HAS_POSITION,
                HAS_TIME, BUCKET_FN, POSITION_GRAD, TIME_GRAD, DOT_PRECISION, NEWTON_STEPS, SOFTMAX, PTX)
        row_mask = offs_n[:, None] < seq_len
        dk_pointers = DK + seq_start * stride_dkt + head * stride_dkh + offs_n[:, None] * stride_dkt + offs_dqk[None, :]
        tl.store(dk_pointers, (dk * scale).to(DK.dtype.element_ty),
                 mask=row_mask & (offs_dqk[None, :] < HEAD_DIM_QK))
        dv_pointers = DV + seq_start * stride_dvt + head * stride_dvh + offs_n[:, None] * stride_dvt + offs_dv[None, :]
        tl.store(dv_pointers, dv.to(DV.dtype.element_ty), mask=row_mask & (offs_dv[None, :] < HEAD_DIM_V))


_tuned_backward_kernel = triton.autotune(
    configs=backward_configs(),
    prune_configs_by={"early_config_prune": config_pruner(backward_configs)},
    key=["HEAD_DIM_QK", "HEAD_DIM_V", "length_bucket", "HAS_TARGETS", "HAS_CONTEXT", "HAS_POSITION",
         "HAS_TIME", "BUCKET_FN", "POSITION_GRAD", "TIME_GRAD", "SOFTMAX"],
    # Atomic accumulators must start from zero for every timed candidate and the final run.
    reset_to_zero=["DQ", "POSITION_GRAD_PARTIAL", "TIME_GRAD_PARTIAL"],
)(hstu_attention_backward_kernel)


def _partial_sum_buffer(num_programs: int, table: Tensor | None, wanted: bool,
                        like: Tensor) -> tuple[Tensor, int]:
    """fp32 [slots, table size] zeros for one bias table's per-program partial sums, and slots."""
    if table is None or not wanted:
        return torch.zeros(1, dtype=torch.float32, device=like.device), 1
    slots = max(1, min(num_programs, PARTIAL_SUM_BUDGET // table.numel()))
    return torch.zeros(slots, table.numel(), dtype=torch.float32, device=like.device), slots


def attention_backward(problem: AttentionProblem, tables: WorkTables | None, grad_out: Tensor, *,
                       position_grad: bool, time_grad: bool, out: Tensor | None = None,
                       log_sum_exp: Tensor | None = None) -> AttentionGradients:
    """Gradients for the forward of ``problem`` given dL/dout [T, H, Dv] (contiguous).

    ``tables`` are the forward's work tables (None only for an empty batch). Softmax also needs
    the forward's output and row log-sum-exp [T, H].
    """
    q, k, v = problem.q, problem.k, problem.v
    total_tokens, num_heads = q.shape[0], q.shape[1]
    position_grad = position_grad and problem.position_weights is not None
    time_grad = time_grad and problem.time_weights is not None
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)  # atomics accumulate in fp32
    dk, dv = torch.empty_like(k), torch.empty_like(v)  # every row is written by its key block
    # Upper bound on programs over configs (smallest BLOCK_N is 16): enough partial-sum slots
    # however the autotuner splits the work.
    num_programs = 0 if tables is None else num_heads * tables.pieces * (tables.chunk // 16)
    position_partial, position_slots = _partial_sum_buffer(num_programs, problem.position_weights,
                                                           position_grad, q)
    time_partial, time_slots = _partial_sum_buffer(num_programs, problem.time_weights, time_grad, q)
    if total_tokens > 0 and num_heads > 0:
        delta = None
        if problem.activation == "softmax":
            if out is None or log_sum_exp is None:
                raise ValueError("the softmax backward needs the forward's output and log-sum-exp")
            delta = (grad_out.float() * out.float()).sum(-1)  # [T, H] rowsum(dO * O)
        _launch(problem, grad_out, dq, dk, dv, log_sum_exp, delta, position_partial, time_partial,
                position_slots, time_slots, tables, position_grad, time_grad)
    return AttentionGradients(
        q=dq.to(q.dtype), k=dk, v=dv,
        position_weights=position_partial.sum(0).to(problem.position_weights.dtype) if position_grad else None,
        time_weights=time_partial.sum(0).to(problem.time_weights.dtype) if time_grad else None,
    )


def _launch(problem: AttentionProblem, grad_out: Tensor, dq: Tensor, dk: Tensor, dv: Tensor,
            log_sum_exp: Tensor | None, delta: Tensor | None, position_partial: Tensor,
            time_partial: Tensor, position_slots: int, time_slots: int, tables: WorkTables,
            position_grad: bool, time_grad: bool) -> None:
    q, k, v = problem.q, problem.k, problem.v
    num_heads = q.shape[1]
    args = (
        q, k, v, grad_out, dq, dk, dv, placeholder(problem, log_sum_exp), placeholder(problem, delta),
        problem.offsets, placeholder(problem, problem.num_targets),
        placeholder(problem, problem.position_weights), placeholder(problem, problem.time_weights),
        placeholder(problem, problem.query_timestamps), placeholder(problem, problem.key_timestamps),
        position_partial, time_partial, tables.backward,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        grad_out.stride(0), grad_out.stride(1), dq.stride(0), dq.stride(1), dk.stride(0), dk.stride(1),
        dv.stride(0), dv.stride(1),
        num_heads, problem.scale, 1.0 / problem.max_seq_len, problem.max_seq_len,
        problem.contextual_len, problem.num_buckets, position_slots, time_slots,
        length_bucket(problem.max_seq_len),
    )
    flags = {**kernel_flags(problem), "POSITION_GRAD": position_grad, "TIME_GRAD": time_grad}
    pieces, chunk = tables.pieces, tables.chunk
    if problem.interpreted:
        grid = (num_heads * pieces * (chunk // INTERPRETER_BLOCK),)
        hstu_attention_backward_kernel[grid](
            *args, **flags, CHUNK=chunk, BLOCK_M=INTERPRETER_BLOCK, BLOCK_N=INTERPRETER_BLOCK)
    else:
        def grid(meta: dict) -> tuple[int]:
            return (num_heads * pieces * (chunk // meta["BLOCK_N"]),)

        _tuned_backward_kernel[grid](*args, **flags, CHUNK=chunk)
