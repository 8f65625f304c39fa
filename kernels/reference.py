"""Padded-and-masked PyTorch reference for :func:`kernels.attention.jagged_attention`.

Readable rather than fast: it pads the batch to its longest sequence and materialises the
[B, H, L, L] score matrix. It is the oracle every other backend is tested against, so each step
follows the semantics written in ``kernels/attention.py`` literally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels.bias import bucketize_time_gaps
from kernels.jagged import jagged_to_padded, lengths_from_offsets, padded_to_jagged, token_coordinates


def attention_mask(lengths: Tensor, num_targets: Tensor | None, contextual_len: int, max_len: int) -> Tensor:
    """[B, L, L] bool: may query i attend to key j (see ``kernels/attention.py`` for the rules)."""
    device = lengths.device
    query = torch.arange(max_len, device=device).view(1, max_len, 1)
    key = torch.arange(max_len, device=device).view(1, 1, max_len)
    targets = num_targets.to(lengths.dtype) if num_targets is not None else torch.zeros_like(lengths)
    history_end = (lengths - targets).view(-1, 1, 1)  # [B, 1, 1]
    key_in_history = (key >= contextual_len) & (key < history_end)
    causal_history = key_in_history & (key <= query)
    # Targets see the whole history; history queries see only their past (j <= i already).
    target_sees_history = key_in_history & (query >= history_end)
    prefix = key < contextual_len
    itself = key == query
    key_exists = key < lengths.view(-1, 1, 1)
    return (itself | ((prefix | causal_history | target_sees_history) & key_exists))


def token_positions(lengths: Tensor, num_targets: Tensor | None, max_len: int) -> Tensor:
    """[B, L] relative-bias positions: the token index, with every target at the history's end."""
    positions = torch.arange(max_len, device=lengths.device).view(1, max_len).expand(lengths.numel(), max_len)
    if num_targets is None:
        return positions
    history_end = (lengths - num_targets.to(lengths.dtype)).view(-1, 1)
    return torch.minimum(positions, history_end)


def relative_attention_bias(
    position_weights: Tensor | None,
    time_weights: Tensor | None,
    query_timestamps: Tensor | None,
    key_timestamps: Tensor | None,
    time_bucket_fn: str,
    offsets: Tensor,
    num_targets: Tensor | None,
    max_seq_len: int,
    max_len: int,
    coordinates: tuple[Tensor, Tensor] | None = None,
) -> Tensor | None:
    """[B, 1, L, L] rab^{p,t} (shared across heads), or None when both parts are off."""
    lengths = lengths_from_offsets(offsets)
    rab: Tensor | None = None
    if position_weights is not None:
        positions = token_positions(lengths, num_targets, max_len)  # [B, L]
        relative = positions.unsqueeze(1) - positions.unsqueeze(2) + max_seq_len - 1  # [B, Lq, Lk]
        rab = position_weights[relative.clamp(0, 2 * max_seq_len - 2)]
    if time_weights is not None:
        assert query_timestamps is not None and key_timestamps is not None
        query_time = jagged_to_padded(query_timestamps, offsets, max_len, coordinates=coordinates)  # [B, L]
        key_time = jagged_to_padded(key_timestamps, offsets, max_len, coordinates=coordinates)  # [B, L]
        gaps = query_time.unsqueeze(2) - key_time.unsqueeze(1)  # [B, Lq, Lk]
        buckets = bucketize_time_gaps(gaps, time_weights.numel() - 1, time_bucket_fn)
        time_part = time_weights[buckets]
        rab = time_part if rab is None else rab + time_part
    return None if rab is None else rab.unsqueeze(1)


def reference_jagged_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    *,
    max_seq_len: int,
    activation: str = "silu",
    scale: float = 1.0,
    bias=None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
) -> Tensor:
    """Reference implementation; arguments as :func:`kernels.attention.jagged_attention`."""
    offsets = offsets.to(torch.int64)
    lengths = lengths_from_offsets(offsets)
    if q.shape[0] == 0:
        return v * 0.0  # empty, but still part of the autograd graph
    max_len = int(lengths.max().item())
    coordinates = token_coordinates(offsets)
    padded_q = jagged_to_padded(q, offsets, max_len, coordinates=coordinates)  # [B, L, H, Dqk]
    padded_k = jagged_to_padded(k, offsets, max_len, coordinates=coordinates)  # [B, L, H, Dqk]
    padded_v = jagged_to_padded(v, offsets, max_len, coordinates=coordinates)  # [B, L, H, Dv]
    scores = torch.einsum("bihd,bjhd->bhij", padded_q, padded_k) * scale  # [B, H, L, L]
    if bias is not None:
        rab = relative_attention_bias(
            bias.position_weights, bias.time_weights, bias.query_timestamps, bias.key_timestamps,
            bias.time_bucket_fn, offsets, num_targets, max_seq_len, max_len, coordinates,
        )
        if rab is not None:
            scores = scores + rab.to(scores.dtype)
    mask = attention_mask(lengths, num_targets, contextual_len, max_len).unsqueeze(1)  # [B, 1, L, L]
    if activation == "silu":
        weights = (F.silu(scores) / max_seq_len).masked_fill(~mask, 0.0)
    else:
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    padded_out = torch.einsum("bhij,bjhd->bihd", weights, padded_v)  # [B, L, H, Dv]
    return padded_to_jagged(padded_out, offsets, coordinates=coordinates)
