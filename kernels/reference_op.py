"""The reference attention backend as a ``torch.library`` custom op whose FLOPs a counter can see.

Why a custom op: ``torch.utils.flop_counter.FlopCounterMode`` counts dispatcher ops. Run as
plain PyTorch, the reference would be counted by the padded [B, H, L, L] einsums it
materialises (every sequence padded to the longest, masked half included), not by the work
jagged causal attention does. As one opaque op, forward and backward each get a registered
FLOP formula computed from the jagged shapes, the way PyTorch counts its own fused SDPA ops.
Forward and backward are separate ops (as aten's flash-attention pair is) because a custom
op's implementation runs below autograd: the backward is written out in
:mod:`kernels.reference_backward`.

FLOP formulas (:mod:`kernels.flops`, the counting the models' analytic FLOPs use too): with P
the number of (query, key) pairs the mask allows, summed over sequences,

    forward  = 2 P H (d_qk + d_v)        (S = Q K^T and O = A V)
    backward = 2 x forward               (dA = dO V^T, dV = A^T dO, dQ = dS K, dK = dS^T Q)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from kernels.bias import RelativeAttentionBias
from kernels.flops import allowed_pairs, attention_flops
from kernels.reference import reference_jagged_attention
from kernels.reference_backward import reference_attention_backward

@torch.library.custom_op("gr_scaling::reference_attention", mutates_args=())
def reference_attention_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    position_weights: Tensor | None,
    time_weights: Tensor | None,
    query_timestamps: Tensor | None,
    key_timestamps: Tensor | None,
    num_targets: Tensor | None,
    max_seq_len: int,
    activation: str,
    scale: float,
    time_bucket_fn: str,
    contextual_len: int,
) -> Tensor:
    """[T, H, Dv]: ``reference_jagged_attention`` with the bias passed as its tensors."""
    bias = None
    if position_weights is not None or time_weights is not None:
        bias = RelativeAttentionBias(position_weights, time_weights, query_timestamps, key_timestamps, time_bucket_fn)
    out = reference_jagged_attention(
        q, k, v, offsets, max_seq_len=max_seq_len, activation=activation, scale=scale, bias=bias,
        num_targets=num_targets, contextual_len=contextual_len,
    )
    return out.clone() if out is v else out  # a custom op's output may not alias an input


@reference_attention_op.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, *args: Any) -> Tensor:
    return v.new_empty(v.shape)


@torch.library.custom_op("gr_scaling::reference_attention_backward", mutates_args=())
def reference_attention_backward_op(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    position_weights: Tensor | None,
    time_weights: Tensor | None,
    query_timestamps: Tensor | None,
    key_timestamps: Tensor | None,
    num_targets: Tensor | None,
    max_seq_len: int,
    activation: str,
    scale: float,
    time_bucket_fn: str,
    contextual_len: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, d position_weights, d time_weights); an absent table's gradient is empty."""
    grads = reference_attention_backward(
        grad_out, q, k, v, offsets, position_weights, time_weights, query_timestamps, key_timestamps,
        num_targets, max_seq_len, activation, scale, time_bucket_fn, contextual_len,
    )
    # A custom op cannot return None: an absent table's gradient is an empty tensor.
    return tuple(g if g is not None else q.new_empty(0) for g in grads)  # type: ignore[return-value]


@reference_attention_backward_op.register_fake
def _(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, position_weights: Tensor | None,
      time_weights: Tensor | None, *args: Any) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    tables = [w.new_empty(w.shape) if w is not None else q.new_empty(0) for w in (position_weights, time_weights)]
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), tables[0], tables[1]


_TENSOR_INPUTS = ("q", "k", "v", "offsets", "position_weights", "time_weights", "query_timestamps",
                  "key_timestamps", "num_targets")
_SCALAR_INPUTS = ("max_seq_len", "activation", "scale", "time_bucket_fn", "contextual_len")


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(*inputs[: len(_TENSOR_INPUTS)])
    ctx.scalars = inputs[len(_TENSOR_INPUTS):]
    ctx.has_tables = (inputs[4] is not None, inputs[5] is not None)


def _backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    saved = ctx.saved_tensors
    dq, dk, dv, d_position, d_time = reference_attention_backward_op(grad_out.contiguous(), *saved, *ctx.scalars)
    has_position, has_time = ctx.has_tables
    grads: list[Tensor | None] = [dq, dk, dv, None, d_position if has_position else None, d_time if has_time else None]
    return tuple(grads + [None] * (len(_TENSOR_INPUTS) + len(_SCALAR_INPUTS) - len(grads)))


reference_attention_op.register_autograd(_backward, setup_context=_setup_context)


def attention_forward_flops(q: Tensor, v: Tensor, offsets: Tensor, num_targets: Tensor | None, contextual_len: int) -> int:
    """2 P H (d_qk + d_v): Q K^T and A V over the pairs the mask allows."""
    _, heads, qk_dim = q.shape
    return attention_flops(allowed_pairs(offsets, num_targets, contextual_len), heads, qk_dim, v.shape[-1])


# get_raw: the formula needs the offsets' values (the sequence lengths), not just the tensors' shapes.
@register_flop_formula(torch.ops.gr_scaling.reference_attention, get_raw=True)
def _forward_flops(q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, position_weights: Tensor | None,
                   time_weights: Tensor | None, query_timestamps: Tensor | None, key_timestamps: Tensor | None,
                   num_targets: Tensor | None, max_seq_len: int, activation: str, scale: float,
                   time_bucket_fn: str, contextual_len: int, *, out_val: Any = None) -> int:
    return attention_forward_flops(q, v, offsets, num_targets, contextual_len)


@register_flop_formula(torch.ops.gr_scaling.reference_attention_backward, get_raw=True)
def _backward_flops(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, offsets: Tensor, position_weights: Tensor | None,
                    time_weights: Tensor | None, query_timestamps: Tensor | None, key_timestamps: Tensor | None,
                    num_targets: Tensor | None, max_seq_len: int, activation: str, scale: float,
                    time_bucket_fn: str, contextual_len: int, *, out_val: Any = None) -> int:
    return 2 * attention_forward_flops(q, v, offsets, num_targets, contextual_len)
