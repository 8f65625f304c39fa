"""The CPU backend of :func:`kernels.attention.jagged_attention`: length-grouped batched matmuls over a prepared layout.

Per length group of the batch's :class:`~kernels.layout.AttentionLayout` (sequences padded only
to the group's longest), with Q, K, V gathered head-major as [H * B_g, L_g, D]::

    S = bias_table[bias_index] + scale * Q K^T        (one gather, then baddbmm accumulating into it)
    silu:     A = SiLU(S)                              (the masked entry, MASKED_SILU_SCORE, gives exactly 0)
    softmax:  A = softmax(S)                           (the masked entry is -inf)
    O = A V, and for SiLU O / max_seq_len              (the 1/N applied to O, not to the [L, L] matrix)

The mask costs nothing: masked pairs read the table's last entry. SiLU(x) = x / (1 + e^-x) is
-0.0 and its derivative 0 for x = -1e30 in float32 and float64 (e^1e30 overflows to inf), so a
masked score contributes exactly nothing as long as |scale q.k + rab| stays far below 1e30.

Like the reference it runs as a ``torch.library`` custom op with a hand-written backward, so
``FlopCounterMode`` counts the jagged causal pairs (kernels/flops.py), not the padded matmuls.
The forward returns S (SiLU) or A (softmax) of every group for the backward, which then needs
no gather or Q K^T again::

    dA = dO V^T,   dV = A^T dO,   dS = SiLU'(S) dA  or  A (dA - rowsum(dA A)),
    dQ = scale dS K,   dK = scale dS^T Q,   d bias_table = index_add over heads of dS
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from kernels.bias import RelativeAttentionBias
from kernels.flops import attention_flops
from kernels.layout import AttentionLayout, bias_table

MASKED_SILU_SCORE = -1e30  # SiLU and its derivative are exactly 0 here (see the module docstring)
SUPPORTED_DTYPES = (torch.float32, torch.float64)


def masked_score(activation: str) -> float:
    """The score a masked pair gets: -inf for softmax, MASKED_SILU_SCORE for SiLU (SiLU(-inf) would be NaN)."""
    return float("-inf") if activation == "softmax" else MASKED_SILU_SCORE


@torch.library.custom_op("gr_scaling::cpu_attention", mutates_args=())
def cpu_attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias_table: Tensor,
    token_index: list[Tensor],
    bias_index: list[Tensor],
    activation: str,
    scale: float,
    output_scale: float,
    allowed_pairs: int,
) -> tuple[Tensor, list[Tensor]]:
    """([T, H, Dv] output, per group S or A [H * B_g, L_g, L_g] for the backward)."""
    heads, num_tokens = q.shape[1], q.shape[0]
    q_rows, k_rows, v_rows = (_head_major_with_zero_row(x) for x in (q, k, v))  # [H, T + 1, D]
    out = v.new_empty(heads, num_tokens + 1, v.shape[2])  # row T collects the padding slots
    kept = []
    for rows, entries in zip(token_index, bias_index):
        qg, kg, vg = (_gather(x, rows) for x in (q_rows, k_rows, v_rows))  # [H * Bg, Lg, D]
        scores = _repeat_heads(bias_table[entries], heads).baddbmm_(qg, kg.transpose(1, 2), alpha=scale)
        weights = F.silu(scores) if activation == "silu" else torch.softmax(scores, dim=-1)
        _scatter(out, rows, torch.bmm(weights, vg))
        kept.append(scores if activation == "silu" else weights)
    return (out[:, :num_tokens] * output_scale).transpose(0, 1).contiguous(), kept


@cpu_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, token_index: list[Tensor], *args: Any) -> tuple[Tensor, list[Tensor]]:
    heads = q.shape[1]
    return v.new_empty(v.shape), [q.new_empty(heads * rows.shape[0], rows.shape[1], rows.shape[1]) for rows in token_index]


@torch.library.custom_op("gr_scaling::cpu_attention_backward", mutates_args=())
def cpu_attention_backward_op(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias_table: Tensor,
    token_index: list[Tensor],
    bias_index: list[Tensor],
    kept: list[Tensor],
    activation: str,
    scale: float,
    output_scale: float,
    allowed_pairs: int,
    table_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, d bias_table); d bias_table is empty unless ``table_grad``."""
    heads, num_tokens = q.shape[1], q.shape[0]
    q_rows, k_rows, v_rows = (_head_major_with_zero_row(x) for x in (q, k, v))  # [H, T + 1, D]
    grad_rows = _head_major_with_zero_row(grad_out * output_scale)  # [H, T + 1, Dv]
    grads = [x.new_empty(x.shape) for x in (q_rows, k_rows, v_rows)]
    grad_table = torch.zeros(bias_table.shape if table_grad else (0,), dtype=bias_table.dtype, device=q.device)
    for rows, entries, saved in zip(token_index, bias_index, kept):
        qg, kg, vg, dout = (_gather(x, rows) for x in (q_rows, k_rows, v_rows, grad_rows))
        grad_weights = torch.bmm(dout, vg.transpose(1, 2))  # [H * Bg, Lg, Lg]
        if activation == "silu":
            weights = F.silu(saved)
            grad_scores = torch.ops.aten.silu_backward(grad_weights, saved)
        else:
            weights = saved
            grad_scores = torch.ops.aten._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
        _scatter(grads[2], rows, torch.bmm(weights.transpose(1, 2), dout))
        _scatter(grads[0], rows, torch.bmm(grad_scores, kg).mul_(scale))
        _scatter(grads[1], rows, torch.bmm(grad_scores.transpose(1, 2), qg).mul_(scale))
        if table_grad:
            per_pair = grad_scores.view(heads, -1).sum(0) if heads > 1 else grad_scores.view(-1)
            grad_table.index_add_(0, entries.view(-1), per_pair)
    dq, dk, dv = (grad[:, :num_tokens].transpose(0, 1).contiguous() for grad in grads)
    return dq, dk, dv, grad_table


@cpu_attention_backward_op.register_fake
def _(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, *args: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    table_grad = args[-1]
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), bias_table.new_empty(bias_table.shape if table_grad else (0,))


def _head_major_with_zero_row(x: Tensor) -> Tensor:
    """[T, H, D] -> [H, T + 1, D] contiguous, row T zero (what padding slots gather)."""
    padded = x.new_zeros(x.shape[1], x.shape[0] + 1, x.shape[2])
    padded[:, : x.shape[0]] = x.transpose(0, 1)
    return padded


def _gather(rows_by_head: Tensor, token_index: Tensor) -> Tensor:
    """[H, T + 1, D] at a group's [Bg, Lg] token rows -> [H * Bg, Lg, D]."""
    heads, _, dim = rows_by_head.shape
    batch, length = token_index.shape
    return rows_by_head.index_select(1, token_index.view(-1)).view(heads * batch, length, dim)


def _scatter(rows_by_head: Tensor, token_index: Tensor, values: Tensor) -> None:
    """Write a group's [H * Bg, Lg, D] back to its token rows of [H, T + 1, D] (padding slots all land on row T)."""
    heads, _, dim = rows_by_head.shape
    rows_by_head.index_copy_(1, token_index.view(-1), values.view(heads, -1, dim))


def _repeat_heads(per_pair: Tensor, heads: int) -> Tensor:
    """[Bg, Lg, Lg] -> [H * Bg, Lg, Lg], a fresh tensor the scores accumulate into."""
    if heads == 1:
        return per_pair
    return per_pair.repeat(heads, 1, 1)  # a copy: a reshaped expand could alias the heads, and baddbmm_ writes in place


_TENSOR_ARGUMENTS = 4  # q, k, v, bias_table


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, list[Tensor]]) -> None:
    q, k, v, table, token_index, bias_index, *settings = inputs
    kept = output[1]
    ctx.counts = (len(token_index), len(bias_index))
    ctx.save_for_backward(q, k, v, table, *token_index, *bias_index, *kept)
    ctx.settings = settings
    ctx.mark_non_differentiable(*kept)


def _backward(ctx: Any, grad_out: Tensor, grad_kept: list[Tensor] | None) -> tuple[Tensor | None, ...]:
    q, k, v, table, *rest = ctx.saved_tensors
    groups, _ = ctx.counts
    token_index, bias_index, kept = rest[:groups], rest[groups: 2 * groups], rest[2 * groups:]
    table_grad = bool(ctx.needs_input_grad[3])
    dq, dk, dv, d_table = cpu_attention_backward_op(
        grad_out.contiguous(), q, k, v, table, list(token_index), list(bias_index), list(kept), *ctx.settings, table_grad,
    )
    no_grads = [None] * groups  # the index lists get a list of Nones each
    return dq, dk, dv, d_table if table_grad else None, no_grads, list(no_grads), None, None, None, None


cpu_attention_op.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.gr_scaling.cpu_attention, get_raw=True)
def _forward_flops(q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, token_index: list[Tensor],
                   bias_index: list[Tensor], activation: str, scale: float, output_scale: float, allowed_pairs: int,
                   *, out_val: Any = None) -> int:
    return attention_flops(allowed_pairs, q.shape[1], q.shape[2], v.shape[2])


@register_flop_formula(torch.ops.gr_scaling.cpu_attention_backward, get_raw=True)
def _backward_flops(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, token_index: list[Tensor],
                    bias_index: list[Tensor], kept: list[Tensor], activation: str, scale: float, output_scale: float,
                    allowed_pairs: int, table_grad: bool, *, out_val: Any = None) -> int:
    return 2 * attention_flops(allowed_pairs, q.shape[1], q.shape[2], v.shape[2])


def cpu_jagged_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    layout: AttentionLayout,
    *,
    activation: str,
    scale: float,
    bias: RelativeAttentionBias | None,
) -> Tensor:
    """[T, H, Dv]; arguments as kernels.attention.jagged_attention, which checked that ``layout`` fits them."""
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the cpu attention backend supports float32 and float64; got {q.dtype} (use backend='reference')")
    table = bias_table(bias, masked_score(activation), q.dtype, q.device)
    output_scale = 1.0 / layout.max_seq_len if activation == "silu" else 1.0
    out, _ = cpu_attention_op(
        q, k, v, table, [group.token_index for group in layout.groups], [group.bias_index for group in layout.groups],
        activation, float(scale), output_scale, layout.allowed_pairs,
    )
    return out
