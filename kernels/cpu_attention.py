"""The CPU backend of :func:`kernels.attention.jagged_attention`: batched matmuls over a batch's prepared layout.

Q is gathered once into the layout's query slots and K, V into its key slots (head-major, padding
slots reading a zero row); then per block of the :class:`~kernels.layout.AttentionLayout` (a row
block of sequences padded only to their group's longest: L_q query slots over the first L_k key
slots), with Q as [H * B_g, L_q, D] and K, V as [H * B_g, L_k, D]::

    S = bias_table[bias_index] + scale * Q K^T        (one gather, then baddbmm accumulating into it)
    silu:     A = SiLU(S)                              (the masked entry, MASKED_SILU_SCORE, gives exactly 0)
    softmax:  A = softmax(S)                           (the masked entry is -inf)
    O = A V'  with V' = V / max_seq_len for SiLU       (the 1/N applied to V, not to the [L, L] matrix)

and one gather takes every token's output back from its slot. The mask costs nothing: masked
pairs read the table's last entry. SiLU(x) = x / (1 + e^-x) is -0.0 and its derivative 0 for
x = -1e30 in float32 and float64 (e^1e30 overflows to inf), so a masked score contributes exactly
nothing as long as |scale q.k + rab| stays far below 1e30.

Like the reference it runs as a ``torch.library`` custom op with a hand-written backward, so
``FlopCounterMode`` counts the jagged causal pairs (kernels/flops.py), not the padded matmuls.
The forward returns A (and for SiLU S) of every block for the backward, which then needs no
bias gather, Q K^T or activation again (a key slot collects dK, dV from every block that reads it)::

    dA = dO V'^T,   dV = A^T dO / N (SiLU),   dS = SiLU'(S) dA  or  A (dA - rowsum(dA A)),
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
BLOCK_FIELDS = 4  # block_bounds entries per block: group length, query offset, key offset, keys


def masked_score(activation: str) -> float:
    """The score a masked pair gets: -inf for softmax, MASKED_SILU_SCORE for SiLU (SiLU(-inf) would be NaN)."""
    return float("-inf") if activation == "softmax" else MASKED_SILU_SCORE


@torch.library.custom_op("gr_scaling::cpu_attention", mutates_args=())
def cpu_attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias_table: Tensor,
    bias_index: list[Tensor],
    block_bounds: list[int],
    query_rows: Tensor,
    key_rows: Tensor,
    token_query_rows: Tensor,
    token_key_rows: Tensor,
    activation: str,
    scale: float,
    value_scale: float,
    allowed_pairs: int,
) -> tuple[Tensor, list[Tensor]]:
    """([T, H, Dv] output, per block A and, for SiLU, S [H * B_g, L_q, L_k] for the backward).

    ``bias_index``: each block's [B_g, L_q, L_k] table entries; ``block_bounds``: each block's
    BLOCK_FIELDS ints, flattened; the rows as in :class:`~kernels.layout.AttentionLayout`.
    """
    heads = q.shape[1]
    q_slots = _slots(q, query_rows)  # [H S_q, D]
    k_slots, v_slots = _slots(k, key_rows), _slots(v, key_rows, value_scale)  # [H S_k, D]
    out_slots = v_slots.new_empty(query_rows.numel(), v.shape[2])
    kept = []
    for block in _blocks(bias_index, block_bounds, heads):
        scores = _repeat_heads(_gather_bias(bias_table, block.bias_index), heads)  # [H * Bg, Lq, Lk]
        scores.baddbmm_(block.queries(q_slots), block.keys(k_slots).transpose(1, 2), alpha=scale)
        weights = F.silu(scores) if activation == "silu" else torch.softmax(scores, dim=-1)
        torch.bmm(weights, block.keys(v_slots), out=block.queries(out_slots))
        kept += [weights, scores] if activation == "silu" else [weights]
    return _tokens(out_slots, token_query_rows, heads), kept


@cpu_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, bias_index: list[Tensor], *args: Any) -> tuple[Tensor, list[Tensor]]:
    heads, activation = q.shape[1], args[5]
    kept = [q.new_empty(heads * entries.shape[0], *entries.shape[1:]) for entries in bias_index
            for _ in range(2 if activation == "silu" else 1)]
    return v.new_empty(v.shape), kept


@torch.library.custom_op("gr_scaling::cpu_attention_backward", mutates_args=())
def cpu_attention_backward_op(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias_table: Tensor,
    bias_index: list[Tensor],
    block_bounds: list[int],
    query_rows: Tensor,
    key_rows: Tensor,
    token_query_rows: Tensor,
    token_key_rows: Tensor,
    kept: list[Tensor],
    activation: str,
    scale: float,
    value_scale: float,
    allowed_pairs: int,
    table_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, d bias_table); d bias_table is empty unless ``table_grad``."""
    heads = q.shape[1]
    q_slots, grad_slots = _slots(q, query_rows), _slots(grad_out, query_rows, value_scale)  # [H S_q, D]
    k_slots, v_slots = _slots(k, key_rows), _slots(v, key_rows)  # [H S_k, D]
    grad_q = torch.empty_like(q_slots)  # every query slot belongs to one block
    grad_k, grad_v = torch.zeros_like(k_slots), torch.zeros_like(v_slots)  # a key slot collects from several blocks
    grad_table = torch.zeros(bias_table.shape if table_grad else (0,), dtype=bias_table.dtype, device=q.device)
    per_block = 2 if activation == "silu" else 1
    for number, block in enumerate(_blocks(bias_index, block_bounds, heads)):
        weights = kept[per_block * number]  # [H * Bg, Lq, Lk]
        grad_block = block.queries(grad_slots)  # [H * Bg, Lq, Dv]
        grad_weights = torch.bmm(grad_block, block.keys(v_slots).transpose(1, 2))  # [H * Bg, Lq, Lk]
        if activation == "silu":
            grad_scores = torch.ops.aten.silu_backward(grad_weights, kept[2 * number + 1])
        else:
            grad_scores = torch.ops.aten._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
        block.keys(grad_v).baddbmm_(weights.transpose(1, 2), grad_block)
        torch.bmm(grad_scores, block.keys(k_slots), out=block.queries(grad_q)).mul_(scale)
        block.keys(grad_k).baddbmm_(grad_scores.transpose(1, 2), block.queries(q_slots), alpha=scale)
        if table_grad:
            per_pair = grad_scores.view(heads, -1).sum(0) if heads > 1 else grad_scores.view(-1)
            grad_table.index_add_(0, block.bias_index.view(-1), per_pair)
    return (_tokens(grad_q, token_query_rows, heads), _tokens(grad_k, token_key_rows, heads),
            _tokens(grad_v, token_key_rows, heads), grad_table)


@cpu_attention_backward_op.register_fake
def _(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, *args: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    table_grad = args[-1]
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), bias_table.new_empty(bias_table.shape if table_grad else (0,))


class _Block:
    """One block's views into the slot buffers ([H S, D]): its queries and its group's first keys, [H * B_g, L, D]."""

    def __init__(self, bias_index: Tensor, heads: int, group_length: int, query_offset: int, key_offset: int,
                 num_keys: int) -> None:
        self.bias_index = bias_index
        batch, self.query_length = bias_index.shape[0], bias_index.shape[1]
        self.group_length, self.num_keys = group_length, num_keys
        self.query_rows = slice(query_offset, query_offset + heads * batch * self.query_length)
        self.key_rows = slice(key_offset, key_offset + heads * batch * group_length)

    def queries(self, slots: Tensor) -> Tensor:
        """[H * Bg, Lq, D], a view."""
        return slots[self.query_rows].view(-1, self.query_length, slots.shape[1])

    def keys(self, slots: Tensor) -> Tensor:
        """[H * Bg, Lk, D], a view: the first Lk key slots of each sequence of the group."""
        return slots[self.key_rows].view(-1, self.group_length, slots.shape[1])[:, : self.num_keys]


def _blocks(bias_index: list[Tensor], block_bounds: list[int], heads: int) -> list[_Block]:
    """The op's flat block arguments back as blocks."""
    return [_Block(entries, heads, *block_bounds[BLOCK_FIELDS * number: BLOCK_FIELDS * (number + 1)])
            for number, entries in enumerate(bias_index)]


def _slots(x: Tensor, rows: Tensor, factor: float = 1.0) -> Tensor:
    """[T, H, D] (times ``factor``) -> [S, D] at ``rows`` (t * H + h; t = T reads zeros)."""
    tokens, heads, dim = x.shape
    padded = x.new_empty(tokens + 1, heads, dim)
    if factor == 1.0:
        padded[:tokens] = x
    else:
        torch.mul(x, factor, out=padded[:tokens])
    padded[tokens] = 0
    return padded.view(-1, dim).index_select(0, rows)


def _tokens(slot_values: Tensor, token_rows: Tensor, heads: int) -> Tensor:
    """[S, D] -> [T, H, D]: every (token, head) from its slot."""
    return slot_values.index_select(0, token_rows).view(-1, heads, slot_values.shape[1])


def _gather_bias(bias_table: Tensor, bias_index: Tensor) -> Tensor:
    """[Bg, Lq, Lk] table entries; index_select with int32 indices is several times faster than advanced indexing."""
    return bias_table.index_select(0, bias_index.view(-1)).view(bias_index.shape)


def _repeat_heads(per_pair: Tensor, heads: int) -> Tensor:
    """[Bg, Lq, Lk] -> [H * Bg, Lq, Lk], a fresh tensor the scores accumulate into."""
    if heads == 1:
        return per_pair
    return per_pair.repeat(heads, 1, 1)  # a copy: a reshaped expand could alias the heads, and baddbmm_ writes in place


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, list[Tensor]]) -> None:
    q, k, v, table, bias_index, block_bounds, *slots = inputs[:10]
    ctx.num_blocks = len(bias_index)
    ctx.save_for_backward(q, k, v, table, *slots, *bias_index, *output[1])
    ctx.block_bounds, ctx.settings = block_bounds, inputs[10:]  # activation, scale, value_scale, allowed_pairs
    ctx.mark_non_differentiable(*output[1])


def _backward(ctx: Any, grad_out: Tensor, grad_kept: list[Tensor] | None) -> tuple[Tensor | list[None] | None, ...]:
    q, k, v, table, query_rows, key_rows, token_query_rows, token_key_rows, *rest = ctx.saved_tensors
    count = ctx.num_blocks
    table_grad = bool(ctx.needs_input_grad[3])
    dq, dk, dv, d_table = cpu_attention_backward_op(
        grad_out.contiguous(), q, k, v, table, list(rest[:count]), ctx.block_bounds, query_rows, key_rows,
        token_query_rows, token_key_rows, list(rest[count:]), *ctx.settings, table_grad,
    )
    # One gradient per input; the list of tensors gets a list of Nones.
    return (dq, dk, dv, d_table if table_grad else None, [None] * count) + (None,) * 9


cpu_attention_op.register_autograd(_backward, setup_context=_setup_context)


# get_raw: the formulas read allowed_pairs, a value, not a shape. Forward 2 P H (d_qk + d_v), backward twice that
# (the counting of kernels/reference_op.py).
@register_flop_formula(torch.ops.gr_scaling.cpu_attention, get_raw=True)
def _forward_flops(q: Tensor, k: Tensor, v: Tensor, *args: Any, out_val: Any = None) -> int:
    allowed_pairs = args[-1]
    return attention_flops(allowed_pairs, q.shape[1], q.shape[2], v.shape[2])


@register_flop_formula(torch.ops.gr_scaling.cpu_attention_backward, get_raw=True)
def _backward_flops(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, *args: Any, out_val: Any = None) -> int:
    allowed_pairs = args[-2]
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
    bounds = [field for block in layout.blocks
              for field in (block.group_length, block.query_offset, block.key_offset, block.num_keys)]
    out, _ = cpu_attention_op(
        q, k, v, table, [block.bias_index for block in layout.blocks], bounds, layout.query_rows, layout.key_rows,
        layout.token_query_rows, layout.token_key_rows, activation, float(scale),
        1.0 / layout.max_seq_len if activation == "silu" else 1.0, layout.allowed_pairs,
    )
    return out
