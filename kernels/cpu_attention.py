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
The forward returns A (and for SiLU S) of every block and its Q, K, V' slots for the backward, which
then needs no slot gather, bias gather, Q K^T or activation again (a key slot collects dK, dV from
every block that reads it)::

    dA = dO V'^T,   dV = A^T dO / N (SiLU),   dS = SiLU'(S) dA  or  A (dA - rowsum(dA A)),
    dQ = scale dS K,   dK = scale dS^T Q,   d bias_table = index_add over heads of dS
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from kernels.bias import RelativeAttentionBias
from kernels.flops import attention_flops
from kernels.layout import AttentionLayout, bias_table

MASKED_SILU_SCORE = -1e30  # SiLU and its derivative are exactly 0 here (see the module docstring)
SUPPORTED_DTYPES = (torch.float32, torch.float64)
HALF_DTYPES = (torch.bfloat16, torch.float16)  # computed in float32 (autocast training on a CPU hands them over)
# block_bounds entries per block: batch, query length, keys, group length, query offset, key offset, bias offset
BLOCK_FIELDS = 7


def masked_score(activation: str) -> float:
    """The score a masked pair gets: -inf for softmax, MASKED_SILU_SCORE for SiLU (SiLU(-inf) would be NaN)."""
    return float("-inf") if activation == "softmax" else MASKED_SILU_SCORE


@torch.library.custom_op("gr_scaling::cpu_attention", mutates_args=())
def cpu_attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias_table: Tensor,
    bias_index: Tensor,
    block_bounds: list[int],
    query_rows: Tensor,
    key_rows: Tensor,
    token_query_rows: Tensor,
    token_key_rows: Tensor,
    activation: str,
    scale: float,
    value_scale: float,
    allowed_pairs: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """([T, H, Dv] output, then for the backward: every block's A and, for SiLU, S back to back, and the
    Q, K and V' = V value_scale slots).

    ``bias_index``: the blocks' [B_g, L_q, L_k] table entries back to back; ``block_bounds``: each
    block's BLOCK_FIELDS ints, flattened; the rows as in :class:`~kernels.layout.AttentionLayout`.
    """
    heads = q.shape[1]
    q_slots = _slots(q, query_rows)  # [H S_q, D]
    k_slots, v_slots = _slots(k, key_rows), _slots(v, key_rows, value_scale)  # [H S_k, D]
    out_slots = v_slots.new_empty(query_rows.numel(), v.shape[2])
    kept = q.new_empty(_kept_size(bias_index, heads, activation))
    for block in _blocks(block_bounds, heads, activation):
        scores = block.gather_bias(bias_table, bias_index, kept if activation == "silu" else None)  # [H * Bg, Lq, Lk]
        scores.baddbmm_(block.queries(q_slots), block.keys(k_slots).transpose(1, 2), alpha=scale)
        weights = block.weights(kept)
        if activation == "silu":
            torch.ops.aten.silu.out(scores, out=weights)
        else:
            torch.ops.aten._softmax.out(scores, -1, False, out=weights)
        torch.bmm(weights, block.keys(v_slots), out=block.queries(out_slots))
    return _tokens(out_slots, token_query_rows, heads), kept, q_slots, k_slots, v_slots


@cpu_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, bias_table: Tensor, bias_index: Tensor, block_bounds: list[int],
      query_rows: Tensor, key_rows: Tensor, token_query_rows: Tensor, token_key_rows: Tensor, activation: str,
      *args: Any) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return (v.new_empty(v.shape), q.new_empty(_kept_size(bias_index, q.shape[1], activation)),
            q.new_empty(query_rows.numel(), q.shape[2]), k.new_empty(key_rows.numel(), k.shape[2]),
            v.new_empty(key_rows.numel(), v.shape[2]))


@torch.library.custom_op("gr_scaling::cpu_attention_backward", mutates_args=())
def cpu_attention_backward_op(
    grad_out: Tensor,
    q_slots: Tensor,
    k_slots: Tensor,
    v_slots: Tensor,
    bias_table: Tensor,
    bias_index: Tensor,
    block_bounds: list[int],
    query_rows: Tensor,
    key_rows: Tensor,
    token_query_rows: Tensor,
    token_key_rows: Tensor,
    kept: Tensor,
    activation: str,
    scale: float,
    value_scale: float,
    allowed_pairs: int,
    table_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, d bias_table) from the forward's slots (V' = V value_scale); d bias_table is empty unless
    ``table_grad``."""
    heads = grad_out.shape[1]
    grad_slots = _slots(grad_out, query_rows)  # [H S_q, D]
    grad_q = torch.empty_like(q_slots)  # every query slot belongs to one block
    grad_k, grad_v = torch.zeros_like(k_slots), torch.zeros_like(v_slots)  # a key slot collects from several blocks
    grad_table = torch.zeros(bias_table.shape if table_grad else (0,), dtype=bias_table.dtype, device=grad_out.device)
    for block in _blocks(block_bounds, heads, activation):
        weights = block.weights(kept)  # [H * Bg, Lq, Lk]
        grad_block = block.queries(grad_slots)  # [H * Bg, Lq, Dv]
        grad_weights = torch.bmm(grad_block, block.keys(v_slots).transpose(1, 2))  # [H * Bg, Lq, Lk]
        if activation == "silu":
            grad_scores = torch.ops.aten.silu_backward(grad_weights, block.scores(kept))
        else:
            grad_scores = torch.ops.aten._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
        block.keys(grad_v).baddbmm_(weights.transpose(1, 2), grad_block, alpha=value_scale)
        torch.bmm(grad_scores, block.keys(k_slots), out=block.queries(grad_q)).mul_(scale)
        block.keys(grad_k).baddbmm_(grad_scores.transpose(1, 2), block.queries(q_slots), alpha=scale)
        if table_grad:
            per_pair = grad_scores.view(heads, -1).sum(0) if heads > 1 else grad_scores.view(-1)
            grad_table.index_add_(0, bias_index[block.bias_range], per_pair)
    return (_tokens(grad_q, token_query_rows, heads), _tokens(grad_k, token_key_rows, heads),
            _tokens(grad_v, token_key_rows, heads), grad_table)


@cpu_attention_backward_op.register_fake
def _(grad_out: Tensor, q_slots: Tensor, k_slots: Tensor, v_slots: Tensor, bias_table: Tensor, bias_index: Tensor,
      block_bounds: list[int], query_rows: Tensor, key_rows: Tensor, token_query_rows: Tensor,
      token_key_rows: Tensor, *args: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    table_grad = args[-1]
    grad_table = bias_table.new_empty(bias_table.shape if table_grad else (0,))
    tokens, heads = grad_out.shape[0], grad_out.shape[1]
    return (q_slots.new_empty(tokens, heads, q_slots.shape[1]), k_slots.new_empty(tokens, heads, k_slots.shape[1]),
            v_slots.new_empty(tokens, heads, v_slots.shape[1]), grad_table)


class _Block:
    """One block's views: its queries and its group's first keys in the slot buffers ([H S, D] -> [H * B_g, L, D]),
    its bias entries, and its A and S in the kept buffer."""

    def __init__(self, heads: int, activation: str, batch: int, query_length: int, num_keys: int, group_length: int,
                 query_offset: int, key_offset: int, bias_offset: int) -> None:
        self.heads, self.batch, self.query_length, self.num_keys = heads, batch, query_length, num_keys
        self.group_length = group_length
        self.query_rows = slice(query_offset, query_offset + heads * batch * query_length)
        self.key_rows = slice(key_offset, key_offset + heads * batch * group_length)
        pairs = batch * query_length * num_keys
        self.bias_range = slice(bias_offset, bias_offset + pairs)
        kept_offset = heads * bias_offset * _kept_per_pair(activation)
        self.weights_range = slice(kept_offset, kept_offset + heads * pairs)  # A
        self.scores_range = slice(kept_offset + heads * pairs, kept_offset + 2 * heads * pairs)  # S (SiLU only)

    def queries(self, slots: Tensor) -> Tensor:
        """[H * Bg, Lq, D], a view."""
        return slots[self.query_rows].view(-1, self.query_length, slots.shape[1])

    def keys(self, slots: Tensor) -> Tensor:
        """[H * Bg, Lk, D], a view: the first Lk key slots of each sequence of the group."""
        return slots[self.key_rows].view(-1, self.group_length, slots.shape[1])[:, : self.num_keys]

    def weights(self, kept: Tensor) -> Tensor:
        """[H * Bg, Lq, Lk] view of A in the kept buffer."""
        return kept[self.weights_range].view(-1, self.query_length, self.num_keys)

    def scores(self, kept: Tensor) -> Tensor:
        """[H * Bg, Lq, Lk] view of S in the kept buffer (SiLU)."""
        return kept[self.scores_range].view(-1, self.query_length, self.num_keys)

    def gather_bias(self, bias_table: Tensor, bias_index: Tensor, kept: Tensor | None) -> Tensor:
        """[H * Bg, Lq, Lk] table entries of every head (S in ``kept`` when given, else a new tensor)."""
        entries = bias_index[self.bias_range]
        if kept is None:
            per_pair = bias_table.index_select(0, entries)
        else:
            per_pair = kept[self.scores_range][: entries.numel()]
            torch.index_select(bias_table, 0, entries, out=per_pair)  # int32 indices: far faster than advanced indexing
        scores = per_pair.view(1, -1, self.query_length, self.num_keys)
        if self.heads > 1:  # the heads share rab^{p,t}
            if kept is None:
                return scores.repeat(self.heads, 1, 1, 1).view(-1, self.query_length, self.num_keys)
            self.scores(kept).view(self.heads, *scores.shape[1:])[1:] = scores
        return (self.scores(kept) if kept is not None else scores).view(-1, self.query_length, self.num_keys)


def _kept_per_pair(activation: str) -> int:
    """Floats the forward keeps per (pair, head): A, and S for SiLU's derivative."""
    return 2 if activation == "silu" else 1


def _kept_size(bias_index: Tensor, heads: int, activation: str) -> int:
    return bias_index.numel() * heads * _kept_per_pair(activation)


def _blocks(block_bounds: list[int], heads: int, activation: str) -> list[_Block]:
    """The op's flat block arguments back as blocks."""
    return [_Block(heads, activation, *block_bounds[number: number + BLOCK_FIELDS])
            for number in range(0, len(block_bounds), BLOCK_FIELDS)]


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


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    # The backward reads Q, K, V in the forward's slots, not q, k, v: it gathers nothing again. The slots
    # replace q, k, v in memory where those are tensors of their own (SASRec); HSTU's q, k, v are views of
    # the Eq. 1 output that its U gate keeps anyway, so there they add 3 H D floats per token (plus padding).
    table, bias_index, block_bounds, *rows = inputs[3:10]
    out, kept, *slots = output
    ctx.save_for_backward(*slots, table, bias_index, *rows, kept)
    ctx.block_bounds, ctx.settings = block_bounds, inputs[10:]  # activation, scale, value_scale, allowed_pairs
    ctx.mark_non_differentiable(kept, *slots)
    # No gradient ever flows to the kept buffers: without this autograd hands the backward zero-filled copies
    # of them (for SiLU 2 x 4 bytes per pair and head), one full write per layer and step.
    ctx.set_materialize_grads(False)


def _backward(ctx: Any, grad_out: Tensor, *grad_kept: Tensor | None) -> tuple[Tensor | None, ...]:
    if grad_out is None:  # grads are not materialised (see _setup_context): nothing reached the output
        return (None,) * 14
    q_slots, k_slots, v_slots, table, bias_index, query_rows, key_rows, token_query_rows, token_key_rows, kept = (
        ctx.saved_tensors)
    table_grad = bool(ctx.needs_input_grad[3])
    dq, dk, dv, d_table = cpu_attention_backward_op(
        grad_out.contiguous(), q_slots, k_slots, v_slots, table, bias_index, ctx.block_bounds, query_rows, key_rows,
        token_query_rows, token_key_rows, kept, *ctx.settings, table_grad,
    )
    return (dq, dk, dv, d_table if table_grad else None) + (None,) * 10


cpu_attention_op.register_autograd(_backward, setup_context=_setup_context)


# get_raw: the formulas read allowed_pairs, a value, not a shape. Forward 2 P H (d_qk + d_v), backward twice that
# (the counting of kernels/reference_op.py).
@register_flop_formula(torch.ops.gr_scaling.cpu_attention, get_raw=True)
def _forward_flops(q: Tensor, k: Tensor, v: Tensor, *args: Any, out_val: Any = None) -> int:
    allowed_pairs = args[-1]
    return attention_flops(allowed_pairs, q.shape[1], q.shape[2], v.shape[2])


@register_flop_formula(torch.ops.gr_scaling.cpu_attention_backward, get_raw=True)
def _backward_flops(grad_out: Tensor, q_slots: Tensor, k_slots: Tensor, v_slots: Tensor, *args: Any,
                    out_val: Any = None) -> int:
    allowed_pairs = args[-2]
    return 2 * attention_flops(allowed_pairs, grad_out.shape[1], q_slots.shape[1], v_slots.shape[1])


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
    """[T, H, Dv]; arguments as kernels.attention.jagged_attention, which checked that ``layout`` fits them.

    bf16 and fp16 inputs (from a bf16/fp16 autocast forward, ``train.precision``) are computed in
    float32, outside autocast, and the output returned in their dtype: the backend has no
    half-precision kernels, and on a CPU the saving would be in the matmuls it batches anyway.
    """
    if q.dtype in HALF_DTYPES:
        with torch.autocast("cpu", enabled=False):
            out = cpu_jagged_attention(q.float(), k.float(), v.float(), layout, activation=activation, scale=scale,
                                       bias=bias)
        return out.to(q.dtype)
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the cpu attention backend supports float32 and float64 (bf16 and fp16 computed in "
                         f"float32); got {q.dtype} (use backend='reference')")
    table = bias_table(bias, masked_score(activation), q.dtype, q.device)
    bounds = [field for block in layout.blocks for field in (
        block.batch, block.stop - block.start, block.num_keys, block.group_length, block.query_offset,
        block.key_offset, block.bias_offset,
    )]
    out, *_ = cpu_attention_op(
        q, k, v, table, layout.bias_index, bounds, layout.query_rows, layout.key_rows,
        layout.token_query_rows, layout.token_key_rows, activation, float(scale),
        1.0 / layout.max_seq_len if activation == "silu" else 1.0, layout.allowed_pairs,
    )
    return out
