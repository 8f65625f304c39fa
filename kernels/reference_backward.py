"""Hand-written backward of the padded PyTorch reference attention (no autograd inside).

The reference runs as a ``torch.library`` custom op (see :mod:`kernels.reference_op`) so that
FLOP counters see one attention op instead of the padded matrices it materialises. A custom
op's implementation runs below autograd, so its backward cannot call ``torch.autograd``: the
gradients are written out here, step for step against ``reference_jagged_attention``::

    S = scale * Q K^T + rab          W = act(S) masked          O = W V
    dW = dO V^T,   dV = W^T dO
    silu:     dS = dW * SiLU'(S) / N               (0 where masked)
    softmax:  dS = W * (dW - rowsum(dW * W))       (W is 0 where masked)
    dQ = scale * dS K,   dK = scale * dS^T Q,   d rab = sum over heads of dS

and d rab is scattered back onto the position and time tables it was gathered from.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.bias import bucketize_time_gaps
from kernels.jagged import jagged_to_padded, lengths_from_offsets, padded_to_jagged
from kernels.reference import attention_mask, padded_positions


def reference_attention_backward(
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
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """(dq, dk, dv, d position_weights, d time_weights); a table that is absent gets None."""
    offsets = offsets.to(torch.int64)
    lengths = lengths_from_offsets(offsets)
    if q.shape[0] == 0:
        empty = [None if w is None else torch.zeros_like(w) for w in (position_weights, time_weights)]
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), empty[0], empty[1]
    max_len = int(lengths.max().item())
    padded_q = jagged_to_padded(q, offsets, max_len)  # [B, L, H, Dqk]
    padded_k = jagged_to_padded(k, offsets, max_len)  # [B, L, H, Dqk]
    padded_v = jagged_to_padded(v, offsets, max_len)  # [B, L, H, Dv]
    padded_grad = jagged_to_padded(grad_out, offsets, max_len)  # [B, L, H, Dv]

    position_index = _position_index(offsets, num_targets, max_seq_len, max_len) if position_weights is not None else None
    time_index = (
        _time_index(query_timestamps, key_timestamps, offsets, time_weights.numel() - 1, time_bucket_fn, max_len)
        if time_weights is not None
        else None
    )
    scores = torch.einsum("bihd,bjhd->bhij", padded_q, padded_k) * scale  # [B, H, L, L]
    if position_index is not None:
        scores = scores + position_weights[position_index].unsqueeze(1).to(scores.dtype)
    if time_index is not None:
        scores = scores + time_weights[time_index].unsqueeze(1).to(scores.dtype)
    mask = attention_mask(lengths, num_targets, contextual_len, max_len).unsqueeze(1)  # [B, 1, L, L]

    if activation == "silu":
        weights = (torch.nn.functional.silu(scores) / max_seq_len).masked_fill(~mask, 0.0)
    else:
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    grad_weights = torch.einsum("bihd,bjhd->bhij", padded_grad, padded_v)  # [B, H, L, L]
    grad_v = torch.einsum("bhij,bihd->bjhd", weights, padded_grad)  # [B, L, H, Dv]
    if activation == "silu":
        sigmoid = torch.sigmoid(scores)
        silu_slope = sigmoid * (1 + scores * (1 - sigmoid))
        grad_scores = (grad_weights * silu_slope / max_seq_len).masked_fill(~mask, 0.0)
    else:
        grad_scores = weights * (grad_weights - (grad_weights * weights).sum(-1, keepdim=True))
    grad_q = torch.einsum("bhij,bjhd->bihd", grad_scores, padded_k) * scale  # [B, L, H, Dqk]
    grad_k = torch.einsum("bhij,bihd->bjhd", grad_scores, padded_q) * scale  # [B, L, H, Dqk]

    grad_bias = grad_scores.sum(dim=1)  # [B, L, L]: rab is shared by the heads
    grad_position = _scatter(grad_bias, position_index, position_weights)
    grad_time = _scatter(grad_bias, time_index, time_weights)
    return (
        padded_to_jagged(grad_q, offsets),
        padded_to_jagged(grad_k, offsets),
        padded_to_jagged(grad_v, offsets),
        grad_position,
        grad_time,
    )


def _position_index(offsets: Tensor, num_targets: Tensor | None, max_seq_len: int, max_len: int) -> Tensor:
    """[B, Lq, Lk] row of ``position_weights`` each score reads (as ``relative_attention_bias``)."""
    positions = padded_positions(offsets, num_targets, max_len)  # [B, L]
    relative = positions.unsqueeze(1) - positions.unsqueeze(2) + max_seq_len - 1  # [B, Lq, Lk]
    return relative.clamp(0, 2 * max_seq_len - 2)


def _time_index(
    query_timestamps: Tensor | None, key_timestamps: Tensor | None, offsets: Tensor, num_buckets: int, fn: str, max_len: int
) -> Tensor:
    """[B, Lq, Lk] row of ``time_weights`` each score reads (as ``relative_attention_bias``)."""
    if query_timestamps is None or key_timestamps is None:
        raise ValueError("time_weights need query_timestamps and key_timestamps")
    query_time = jagged_to_padded(query_timestamps, offsets, max_len)  # [B, L]
    key_time = jagged_to_padded(key_timestamps, offsets, max_len)  # [B, L]
    return bucketize_time_gaps(query_time.unsqueeze(2) - key_time.unsqueeze(1), num_buckets, fn)


def _scatter(grad_bias: Tensor, index: Tensor | None, table: Tensor | None) -> Tensor | None:
    """Gradient of ``table[index]`` given the gradient of the gathered values."""
    if table is None or index is None:
        return None
    grad = torch.zeros(table.shape, dtype=torch.float32, device=table.device)
    grad.index_add_(0, index.reshape(-1), grad_bias.reshape(-1).to(torch.float32))
    return grad.to(table.dtype)
