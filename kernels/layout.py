"""A batch's attention layout: what jagged attention needs from positions, timestamps and masks, built once per batch.

Nothing here depends on a layer: the sequence lengths, targets and prefix decide which
(query, key) pairs are allowed, and the positions and timestamps decide which entry of the
rab^{p,t} tables each pair reads (``kernels/attention.py`` states the rules). An encoder builds the
layout once per forward and passes it to every layer, so the time buckets of a batch are
computed once instead of once per layer (the CPU backend, :mod:`kernels.cpu_attention`, reads it).

Length groups. Sequences sorted by length are cut into contiguous groups, each padded only to
its own longest sequence: one matmul per group instead of one per sequence (each call has a
fixed cost) or one for the whole batch padded to its longest sequence (padding is quadratic).
:func:`length_groups` picks the cut that minimises ``sum_g (B_g L_g^2 + GROUP_COST_PAIRS)``.

Bias index. Every (query, key) pair of a group gets one index into the layer's bias table
(:func:`bias_table`): ``position_row * (num_time_buckets + 1) + time_bucket`` with both parts,
either part's row alone, 0 without rab, and the table's last entry (the masked score) where the
mask forbids the pair. Gathering the table at these indices is rab^{p,t} and the mask in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kernels.bias import RelativeAttentionBias, TimeBucketFn, bucketize_time_gaps
from kernels.flops import allowed_pairs
from kernels.jagged import lengths_from_offsets, token_positions
from kernels.reference import attention_mask

# Fixed cost of one more length group, in (query, key) pairs: about what the ~15 tensor calls a
# group costs in the forward and backward take (a few microseconds each) at ~1 ns per pair.
# Measured on the Table 4 shapes (``scaling bench encoder --models``): 1024 to 16384 all within noise.
GROUP_COST_PAIRS = 4096


@dataclass(frozen=True)
class LengthGroup:
    """Sequences padded together: B_g sequences of at most L_g tokens."""

    token_index: Tensor  # [B_g, L_g] int64 row of the jagged values; num_tokens (a zero row) past a sequence's end
    bias_index: Tensor  # [B_g, L_g, L_g] int64 entry of the bias table each score adds; the last one where masked


@dataclass(frozen=True)
class AttentionLayout:
    """One batch's length groups and bias indices, and what they were built for (checked at every use)."""

    groups: tuple[LengthGroup, ...]
    num_tokens: int
    allowed_pairs: int  # pairs the mask allows (kernels/flops.py), for the FLOP counter
    max_seq_len: int
    contextual_len: int
    with_position: bool  # indices include the position part
    num_time_buckets: int | None  # indices include the time part with this many buckets (None: no time part)
    time_bucket_fn: TimeBucketFn
    offsets: Tensor  # [B+1] the batch it describes
    num_targets: Tensor | None  # [B]
    query_timestamps: Tensor | None  # [T] with the time part
    key_timestamps: Tensor | None  # [T] with the time part

    @property
    def table_size(self) -> int:
        """Entries of the bias table the indices read, the masked entry included."""
        return table_size(self.max_seq_len, self.with_position, self.num_time_buckets)


def table_size(max_seq_len: int, with_position: bool, num_time_buckets: int | None) -> int:
    """Entries of :func:`bias_table`: (position rows) x (time buckets), each 1 when absent, plus the masked entry."""
    position_rows = 2 * max_seq_len - 1 if with_position else 1
    time_rows = num_time_buckets + 1 if num_time_buckets is not None else 1
    return position_rows * time_rows + 1


def build_attention_layout(
    offsets: Tensor,
    *,
    max_seq_len: int,
    bias: RelativeAttentionBias | None = None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
    group_cost_pairs: int = GROUP_COST_PAIRS,
) -> AttentionLayout:
    """The layout of a jagged batch for attention with ``bias``'s parts (its weights are only looked at for their sizes)."""
    offsets = offsets.to(torch.int64)
    with_position = bias is not None and bias.position_weights is not None
    with_time = bias is not None and bias.time_weights is not None
    num_buckets = int(bias.time_weights.numel()) - 1 if with_time else None
    num_tokens = int(offsets[-1].item()) if offsets.numel() else 0
    lengths = lengths_from_offsets(offsets)
    sequence_groups = length_groups(lengths.cpu().numpy(), group_cost_pairs)
    positions = _padded_with_zero(token_positions(offsets, num_targets)) if with_position else None
    stamps = (_padded_with_zero(bias.query_timestamps), _padded_with_zero(bias.key_timestamps)) if with_time else None
    masked = table_size(max_seq_len, with_position, num_buckets) - 1
    groups = []
    for sequences in sequence_groups:
        chosen = torch.as_tensor(sequences, device=offsets.device)
        token_index = _token_index(offsets[:-1][chosen], lengths[chosen], num_tokens)  # [Bg, Lg]
        mask = attention_mask(lengths[chosen], None if num_targets is None else num_targets[chosen], contextual_len,
                              token_index.shape[1])  # [Bg, Lg, Lg]
        index = _bias_index(token_index, positions, stamps, max_seq_len, num_buckets, bias)
        groups.append(LengthGroup(token_index, torch.where(mask, index, masked)))
    return AttentionLayout(
        groups=tuple(groups), num_tokens=num_tokens, allowed_pairs=allowed_pairs(offsets, num_targets, contextual_len),
        max_seq_len=max_seq_len, contextual_len=contextual_len, with_position=with_position,
        num_time_buckets=num_buckets, time_bucket_fn=bias.time_bucket_fn if with_time else "log",
        offsets=offsets, num_targets=num_targets,
        query_timestamps=bias.query_timestamps if with_time else None,
        key_timestamps=bias.key_timestamps if with_time else None,
    )


def length_groups(lengths: np.ndarray, group_cost_pairs: int = GROUP_COST_PAIRS) -> list[np.ndarray]:
    """Sequence ids (longest first) cut into groups minimising sum_g (B_g L_g^2 + group_cost_pairs); empty ones left out.

    Sorted by length, an optimal cut is contiguous, so dynamic programming over the cut points is
    exact: best[i] = min_j best[j] + (i - j) L_j^2 + cost, with L_j the longest of sequences j..i-1.
    """
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    squares = lengths[order].astype(np.float64) ** 2
    best = np.zeros(len(order) + 1)
    cut = np.zeros(len(order) + 1, dtype=np.int64)
    for end in range(1, len(order) + 1):
        starts = np.arange(end)
        costs = best[:end] + (end - starts) * squares[:end] + group_cost_pairs
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]]
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def bias_table(bias: RelativeAttentionBias | None, masked_score: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[table_size]: the rab^{p,t} value of every (position row, time bucket), then ``masked_score``.

    With both parts it is the outer sum position_weights[p] + time_weights[t] flattened row-major,
    so one gather replaces two gathers and an add; its gradient reaches both tables through autograd.
    """
    position = None if bias is None else bias.position_weights
    time = None if bias is None else bias.time_weights
    if position is not None and time is not None:
        values = (position.unsqueeze(1) + time.unsqueeze(0)).reshape(-1)
    elif position is not None or time is not None:
        values = position if position is not None else time
    else:
        values = torch.zeros(1, dtype=dtype, device=device)
    return torch.cat([values.to(dtype), torch.full((1,), masked_score, dtype=dtype, device=device)])


def _padded_with_zero(values: Tensor) -> Tensor:
    """[T + 1]: ``values`` and one 0 for the padding index T."""
    return torch.cat([values, values.new_zeros(1)])


def _token_index(starts: Tensor, lengths: Tensor, num_tokens: int) -> Tensor:
    """[Bg, Lg] row of each padded slot: start + position, or num_tokens past the sequence's end."""
    slot = torch.arange(int(lengths.max()), device=starts.device).unsqueeze(0)  # [1, Lg]
    return torch.where(slot < lengths.unsqueeze(1), starts.unsqueeze(1) + slot, num_tokens)


def _bias_index(token_index: Tensor, positions: Tensor | None, stamps: tuple[Tensor, Tensor] | None,
                max_seq_len: int, num_buckets: int | None, bias: RelativeAttentionBias | None) -> Tensor:
    """[Bg, Lg, Lg] entry of the bias table each pair reads (as ``relative_attention_bias`` in kernels/reference.py)."""
    batch, length = token_index.shape
    index = torch.zeros(batch, length, length, dtype=torch.int64, device=token_index.device)
    if positions is not None:
        padded = positions[token_index]  # [Bg, Lg]
        relative = padded.unsqueeze(1) - padded.unsqueeze(2) + max_seq_len - 1  # [Bg, Lq, Lk]
        index = relative.clamp_(0, 2 * max_seq_len - 2)
    if stamps is not None and bias is not None and num_buckets is not None:
        query_time, key_time = stamps[0][token_index], stamps[1][token_index]  # [Bg, Lg]
        buckets = bucketize_time_gaps(query_time.unsqueeze(2) - key_time.unsqueeze(1), num_buckets, bias.time_bucket_fn)
        index = index * (num_buckets + 1) + buckets
    return index
