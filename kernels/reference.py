"""Padded-and-masked PyTorch reference for :func:`kernels.attention.jagged_attention`.

Readable rather than fast: it pads the batch to its longest sequence and materialises the
[B, H, L, L] score matrix. It is the oracle every other backend is tested against, so each step
follows the semantics written in ``kernels/attention.py`` literally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels.bias import RelativeAttentionBias, bucketize_time_gaps
from kernels.cache import CachedKeyValues
from kernels.jagged import jagged_to_padded, lengths_from_offsets, padded_to_jagged, token_coordinates, token_positions


def attention_mask(
    lengths: Tensor, num_targets: Tensor | None, contextual_len: int, max_len: int,
    query_slots: Tensor | None = None, num_keys: int | None = None,
) -> Tensor:
    """[B, L, L] bool: may query i attend to key j (see ``kernels/attention.py`` for the rules).

    ``query_slots`` [Lq] and ``num_keys`` restrict it to those query rows and the first keys: [B, Lq, num_keys].
    """
    device = lengths.device
    query_slots = torch.arange(max_len, device=device) if query_slots is None else query_slots
    query = query_slots.view(1, -1, 1)
    key = torch.arange(max_len if num_keys is None else num_keys, device=device).view(1, 1, -1)
    targets = num_targets.to(lengths.dtype) if num_targets is not None else torch.zeros_like(lengths)
    history_end = (lengths - targets).view(-1, 1, 1)  # [B, 1, 1]
    key_in_history = (key >= contextual_len) & (key < history_end)  # [B, 1, Lk]
    allowed = key_in_history & (key <= query)  # history keys causally
    if num_targets is not None:  # targets see the whole history; history queries only their past (j <= i already)
        allowed |= key_in_history & (query >= history_end)
    if contextual_len > 0:  # the prefix, where it exists
        allowed |= (key < contextual_len) & (key < lengths.view(-1, 1, 1))
    return allowed | (key == query)  # every slot sees itself (padding slots too: a softmax row is never empty)


def padded_positions(
    offsets: Tensor, num_targets: Tensor | None, max_len: int, coordinates: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """[B, L] :func:`~kernels.jagged.token_positions` right-padded with 0 (padding is always masked)."""
    return jagged_to_padded(token_positions(offsets, num_targets), offsets, max_len, coordinates=coordinates)


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
    rab: Tensor | None = None
    if position_weights is not None:
        positions = padded_positions(offsets, num_targets, max_len, coordinates)  # [B, L]
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
    bias: RelativeAttentionBias | None = None,
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


def cached_relative_attention_bias(
    bias: RelativeAttentionBias, history_timestamps: Tensor | None, history_offsets: Tensor, target_offsets: Tensor,
    max_seq_len: int, max_history: int, max_targets: int,
) -> tuple[Tensor | None, Tensor | None]:
    """rab^{p,t} of candidates over a cached history: ([B, 1, M, Nh] to history keys, [M] to themselves).

    Every candidate sits at position h_b (right after its history), so its position bias to history
    key j is ``position_weights[j - h_b + N - 1]`` and to itself ``position_weights[N - 1]``.
    """
    history_lengths = lengths_from_offsets(history_offsets)
    to_history: Tensor | None = None
    to_itself: Tensor | None = None
    num_candidates = int(target_offsets[-1].item())
    if bias.position_weights is not None:
        key = torch.arange(max_history, device=history_offsets.device).view(1, 1, 1, max_history)
        relative = key - history_lengths.view(-1, 1, 1, 1) + max_seq_len - 1  # [B, 1, 1, Nh]
        to_history = bias.position_weights[relative.clamp(0, 2 * max_seq_len - 2)]
        to_itself = bias.position_weights[max_seq_len - 1].expand(num_candidates)
    if bias.time_weights is not None:
        num_buckets = bias.time_weights.numel() - 1
        query_time = jagged_to_padded(bias.query_timestamps, target_offsets, max_targets)  # [B, M]
        key_time = jagged_to_padded(history_timestamps, history_offsets, max_history)  # [B, Nh]
        gaps = query_time.unsqueeze(2) - key_time.unsqueeze(1)  # [B, M, Nh]
        time_part = bias.time_weights[bucketize_time_gaps(gaps, num_buckets, bias.time_bucket_fn)].unsqueeze(1)
        own_gaps = bias.query_timestamps - bias.key_timestamps  # [M]
        own_part = bias.time_weights[bucketize_time_gaps(own_gaps, num_buckets, bias.time_bucket_fn)]
        to_history = time_part if to_history is None else to_history + time_part
        to_itself = own_part if to_itself is None else to_itself + own_part
    return to_history, to_itself


def reference_cached_target_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    target_offsets: Tensor,
    history: CachedKeyValues,
    *,
    max_seq_len: int,
    activation: str = "silu",
    scale: float = 1.0,
    bias: RelativeAttentionBias | None = None,
) -> Tensor:
    """Reference for :func:`kernels.attention.cached_target_attention`: [M, H, Dv].

    Cost per candidate: one row of scores against its history, O(h H (Dqk + Dv)), plus its own
    key; no history row is recomputed.
    """
    target_offsets = target_offsets.to(torch.int64)
    history_offsets = history.offsets.to(torch.int64)
    if q.shape[0] == 0:
        return v.new_zeros(v.shape)
    history_lengths = lengths_from_offsets(history_offsets)  # [B]
    max_history = max(int(history_lengths.max().item()), 1)
    max_targets = int(lengths_from_offsets(target_offsets).max().item())
    targets_at = token_coordinates(target_offsets)
    padded_q = jagged_to_padded(q, target_offsets, max_targets, coordinates=targets_at)  # [B, M, H, Dqk]
    history_k = jagged_to_padded(history.k, history_offsets, max_history)  # [B, Nh, H, Dqk]
    history_v = jagged_to_padded(history.v, history_offsets, max_history)  # [B, Nh, H, Dv]
    to_history = torch.einsum("bihd,bjhd->bhij", padded_q, history_k) * scale  # [B, H, M, Nh]
    to_itself = (q * k).sum(-1) * scale  # [M, H]
    if bias is not None:
        rab_history, rab_itself = cached_relative_attention_bias(
            bias, history.timestamps, history_offsets, target_offsets, max_seq_len, max_history, max_targets
        )
        if rab_history is not None:
            to_history = to_history + rab_history.to(to_history.dtype)
            to_itself = to_itself + rab_itself.to(to_itself.dtype).unsqueeze(1)
    key_exists = (torch.arange(max_history, device=q.device).view(1, -1) < history_lengths.view(-1, 1)).view(-1, 1, 1, max_history)
    if activation == "silu":
        history_weights = (F.silu(to_history) / max_seq_len).masked_fill(~key_exists, 0.0)
        own_weight = F.silu(to_itself) / max_seq_len  # [M, H]
    else:
        own_padded = jagged_to_padded(to_itself, target_offsets, max_targets, coordinates=targets_at)  # [B, M, H]
        logits = torch.cat([to_history.masked_fill(~key_exists, float("-inf")), own_padded.permute(0, 2, 1).unsqueeze(-1)], -1)
        weights = torch.softmax(logits, dim=-1)  # [B, H, M, Nh + 1]
        history_weights = weights[..., :-1]
        own_weight = padded_to_jagged(weights[..., -1].permute(0, 2, 1), target_offsets, coordinates=targets_at)  # [M, H]
    padded_out = torch.einsum("bhij,bjhd->bihd", history_weights, history_v)  # [B, M, H, Dv]
    return padded_to_jagged(padded_out, target_offsets, coordinates=targets_at) + own_weight.unsqueeze(-1) * v
