"""A batch's attention layout: what jagged attention needs from positions, timestamps and masks, built once per batch.

Nothing here depends on a layer's weights: the sequence lengths, targets and prefix decide which
(query, key) pairs are allowed, and the positions and timestamps decide which entry of the
rab^{p,t} tables each pair reads (``kernels/attention.py`` states the rules). An encoder builds the
layout once per forward and passes it to every layer, so the time buckets of a batch are
computed once instead of once per layer (the CPU backend, :mod:`kernels.cpu_attention`, reads it).

Length groups. Sequences sorted by length are cut into contiguous groups, each padded only to
its own longest sequence: one matmul per group instead of one per sequence (each call has a
fixed cost) or one for the whole batch padded to its longest sequence (padding is quadratic).
:func:`length_groups` picks the cut that minimises ``sum_g (B_g L_g^2 + GROUP_COST_PAIRS)``.

Row blocks. A group's query rows are cut into blocks of at most BLOCK_ROWS rows, and each block
reads only the keys up to the last one any of its rows may see: causal attention then computes
about (R + 1) / 2R of the L x L scores with R blocks instead of all of them.

Slots. A slot is one (sequence, position) cell of a padded group, per head. The backend gathers
Q into query slots ordered block by block and K, V into key slots ordered group by group, each
block's or group's slots as [H, B_g, L] so that they are one contiguous [H * B_g, L, D] batch of
matrices; slots past a sequence's end read a zero row. ``token_query_rows`` and ``token_key_rows``
say where every (token, head) sits, to gather results back in token order.

Bias index. Every (query, key) pair of a block gets one index into the layer's bias table
(:func:`bias_table`): ``position_row * (num_time_buckets + 1) + time_bucket`` with both parts,
either part's row alone, 0 without rab, and the table's last entry (the masked score) where the
mask forbids the pair. Gathering the table at these indices is rab^{p,t} and the mask in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kernels.bias import RelativeAttentionBias, TimeBucketFn, pairwise_time_buckets
from kernels.flops import allowed_pairs
from kernels.jagged import lengths_from_offsets, token_positions
from kernels.reference import attention_mask

# Fixed cost of one more length group, in (query, key) pairs; measured on the Table 4 and
# quickstart shapes (``scaling bench encoder --models``): 4096 to 65536 are within noise there.
GROUP_COST_PAIRS = 16384
# Most query rows per block; 32 to 64 measured best on those shapes (1000, i.e. no blocks, was 1.4x slower).
BLOCK_ROWS = 64


@dataclass(frozen=True)
class AttentionBlock:
    """Query positions ``start:stop`` of B_g sequences padded together to L_g, over their first ``num_keys`` keys.

    Its queries are rows ``query_offset : query_offset + H B_g (stop - start)`` of the query slots
    ([H, B_g, L_q]); its group's keys rows ``key_offset : key_offset + H B_g L_g`` of the key slots.
    """

    start: int
    stop: int
    num_keys: int  # L_k: query i sees keys up to max(i, contextual_len - 1), so stop (or the prefix) bounds them
    batch: int  # B_g
    group_length: int  # L_g
    query_offset: int
    key_offset: int
    bias_offset: int  # its B_g L_q L_k entries start here in AttentionLayout.bias_index
    bias_index: Tensor  # [B_g, L_q, L_k] int32 entry of the bias table each score adds (a view of the layout's)


@dataclass(frozen=True)
class AttentionLayout:
    """One batch's attention blocks, where their slots come from and go to, and what they were built for."""

    blocks: tuple[AttentionBlock, ...]
    bias_index: Tensor  # [P] int32 every block's bias entries, back to back (the last table entry where masked)
    query_rows: Tensor  # [H S_q] int64 row t * H + h of (token t, head h) each query slot reads; t = T for padding
    key_rows: Tensor  # [H S_k] int64 the same for the key slots
    token_query_rows: Tensor  # [T * H] int64 the query slot of each (token, head), token-major
    token_key_rows: Tensor  # [T * H] int64 the key slot of each (token, head)
    num_heads: int
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
    num_heads: int,
    bias: RelativeAttentionBias | None = None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
    group_cost_pairs: int = GROUP_COST_PAIRS,
    block_rows: int = BLOCK_ROWS,
) -> AttentionLayout:
    """The layout of a jagged batch for ``num_heads`` heads and ``bias``'s parts (its weights only tell their sizes)."""
    offsets = offsets.to(torch.int64)
    with_time = bias is not None and bias.time_weights is not None
    scores = _ScoreIndexer(
        max_seq_len=max_seq_len,
        with_position=bias is not None and bias.position_weights is not None,
        num_buckets=int(bias.time_weights.numel()) - 1 if with_time else None,
        time_bucket_fn=bias.time_bucket_fn if with_time else "log",
        contextual_len=contextual_len,
    )
    num_tokens = int(offsets[-1].item()) if offsets.numel() else 0
    lengths = lengths_from_offsets(offsets)
    # Positions only differ from the slot index when targets are clamped to the history's end.
    positions = _padded_with_zero(token_positions(offsets, num_targets)) if num_targets is not None else None
    stamps = _rebased_timestamps(bias.query_timestamps, bias.key_timestamps) if with_time else None
    query_slots, key_slots = _Slots(num_heads, num_tokens), _Slots(num_heads, num_tokens)
    blocks: list[tuple[slice, _Group, int, int]] = []  # (rows, group, query offset, key offset)
    for sequences in length_groups(lengths.cpu().numpy(), group_cost_pairs):
        chosen = torch.as_tensor(sequences, device=offsets.device)
        group = _Group(
            token_index=_token_index(offsets[:-1][chosen], lengths[chosen], num_tokens),
            lengths=lengths[chosen], num_targets=None if num_targets is None else num_targets[chosen],
        )
        key_offset = key_slots.add(group.token_index)
        blocks += [(rows, group, query_slots.add(group.token_index[:, rows]), key_offset)
                   for rows in row_blocks(group.length, block_rows)]
    sizes = [group.token_index.shape[0] * (rows.stop - rows.start) * block_keys(group.length, rows, contextual_len)
             for rows, group, _, _ in blocks]
    bias_index = torch.empty(sum(sizes), dtype=torch.int32, device=offsets.device)
    for (rows, group, _, _), start, size in zip(blocks, np.cumsum([0, *sizes[:-1]]), sizes):
        scores.bias_index(group, rows, positions, stamps, out=bias_index[start: start + size])
    query_rows, token_query_rows = query_slots.rows(offsets.device)
    key_rows, token_key_rows = key_slots.rows(offsets.device)
    return AttentionLayout(
        blocks=_blocks(blocks, sizes, bias_index, contextual_len), bias_index=bias_index, query_rows=query_rows,
        key_rows=key_rows, token_query_rows=token_query_rows,
        token_key_rows=token_key_rows, num_heads=num_heads, num_tokens=num_tokens,
        allowed_pairs=allowed_pairs(offsets, num_targets, contextual_len),
        max_seq_len=max_seq_len, contextual_len=contextual_len, with_position=scores.with_position,
        num_time_buckets=scores.num_buckets, time_bucket_fn=scores.time_bucket_fn,
        offsets=offsets, num_targets=num_targets,
        query_timestamps=bias.query_timestamps if with_time else None,
        key_timestamps=bias.key_timestamps if with_time else None,
    )


def row_blocks(length: int, block_rows: int = BLOCK_ROWS) -> list[slice]:
    """``length`` query positions cut into ceil(length / block_rows) blocks of (almost) equal size."""
    count = -(-length // block_rows)
    bounds = [round(length * part / count) for part in range(count + 1)]
    return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]


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


def bias_table(bias: RelativeAttentionBias | None, masked_score: float, dtype: torch.dtype,
               device: torch.device) -> Tensor:
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


@dataclass(frozen=True)
class _Group:
    """Sequences padded together: their token rows ([Bg, Lg], num_tokens past an end), lengths and targets."""

    token_index: Tensor
    lengths: Tensor
    num_targets: Tensor | None

    @property
    def length(self) -> int:
        return self.token_index.shape[1]


class _Slots:
    """Collects chunks of slots ([B, L] token rows each, laid out [H, B, L]) and where every (token, head) lands."""

    def __init__(self, num_heads: int, num_tokens: int) -> None:
        self.num_heads, self.num_tokens = num_heads, num_tokens
        self.chunks: list[Tensor] = []
        self.size = 0

    def add(self, token_index: Tensor) -> int:
        """Append a [B, L] chunk; returns its first row."""
        start = self.size
        self.chunks.append(token_index.reshape(-1))
        self.size += self.num_heads * token_index.numel()
        return start

    def rows(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(row t * H + h each slot reads, [H S]; slot of each (token, head), [T * H])."""
        heads = torch.arange(self.num_heads, device=device)
        reads, token_slot = [], torch.empty(self.num_tokens * self.num_heads, dtype=torch.int64, device=device)
        start = 0
        for tokens in self.chunks:
            read = tokens.unsqueeze(0) * self.num_heads + heads.unsqueeze(1)  # [H, n], padding reads T * H + h
            slot = start + torch.arange(read.numel(), device=device).view(read.shape)
            real = tokens < self.num_tokens
            token_slot[read[:, real].reshape(-1)] = slot[:, real].reshape(-1)
            reads.append(read.reshape(-1))
            start += read.numel()
        return (torch.cat(reads) if reads else torch.zeros(0, dtype=torch.int64, device=device)), token_slot


@dataclass(frozen=True)
class _ScoreIndexer:
    """Builds the bias index of a block: which table entry every (query, key) pair reads, masked pairs the last one."""

    max_seq_len: int
    with_position: bool
    num_buckets: int | None
    time_bucket_fn: TimeBucketFn
    contextual_len: int

    def bias_index(self, group: _Group, rows: slice, positions: Tensor | None, stamps: tuple[Tensor, Tensor] | None,
                   out: Tensor) -> None:
        """Write into ``out`` the [Bg, Lq, Lk] int32 entries of ``group``'s query positions ``rows``, over the keys
        up to the last one they may see."""
        device = group.token_index.device
        slots = torch.arange(rows.start, rows.stop, device=device)
        num_keys = block_keys(group.length, rows, self.contextual_len)
        mask = attention_mask(group.lengths, group.num_targets, self.contextual_len, group.length, slots, num_keys)
        query_index, key_index = group.token_index[:, rows], group.token_index[:, :num_keys]
        index = torch.zeros(1, 1, 1, dtype=torch.int32, device=device)  # without rab every pair reads entry 0
        if self.with_position:
            index = self._position_rows(query_index, key_index, slots, positions)  # [1 or Bg, Lq, Lk]
        if stamps is not None and self.num_buckets is not None:
            buckets = pairwise_time_buckets(stamps[0][query_index], stamps[1][key_index], self.num_buckets,
                                            self.time_bucket_fn)  # [Bg, Lq, Lk]
            index = buckets.add_(index, alpha=self.num_buckets + 1)
        masked = table_size(self.max_seq_len, self.with_position, self.num_buckets) - 1
        torch.where(mask, index, torch.tensor(masked, dtype=torch.int32, device=device), out=out.view(mask.shape))

    def _position_rows(self, query_index: Tensor, key_index: Tensor, slots: Tensor, positions: Tensor | None) -> Tensor:
        """[1 or Bg, Lq, Lk] int32 row of ``position_weights`` each pair reads: p_j - p_i + N - 1, clamped.

        Without targets p is the slot index, the same for every sequence of the group ([1, Lq, Lk]);
        pairs with a padding slot are masked, so what they read does not matter.
        """
        if positions is None:
            query = slots.to(torch.int32).view(1, -1, 1)
            key = torch.arange(key_index.shape[1], dtype=torch.int32, device=slots.device).view(1, 1, -1)
        else:
            query = positions[query_index].to(torch.int32).unsqueeze(2)
            key = positions[key_index].to(torch.int32).unsqueeze(1)
        return (key - query + (self.max_seq_len - 1)).clamp_(0, 2 * self.max_seq_len - 2)


def block_keys(group_length: int, rows: slice, contextual_len: int) -> int:
    """Keys a block of query positions ``rows`` needs: query i sees keys up to max(i, contextual_len - 1)
    (itself, its past, the prefix; targets see only the history before them)."""
    return min(group_length, max(rows.stop, contextual_len))


def _blocks(blocks: list[tuple[slice, _Group, int, int]], sizes: list[int], bias_index: Tensor,
            contextual_len: int) -> tuple[AttentionBlock, ...]:
    """The blocks, each with its offsets and a view of its entries in the concatenated ``bias_index``."""
    built, bias_offset = [], 0
    for (rows, group, query_offset, key_offset), size in zip(blocks, sizes):
        num_keys = block_keys(group.length, rows, contextual_len)
        built.append(AttentionBlock(
            start=rows.start, stop=rows.stop, num_keys=num_keys, batch=group.token_index.shape[0],
            group_length=group.length, query_offset=query_offset, key_offset=key_offset, bias_offset=bias_offset,
            bias_index=bias_index[bias_offset: bias_offset + size].view(-1, rows.stop - rows.start, num_keys),
        ))
        bias_offset += size
    return tuple(built)


def _rebased_timestamps(query_timestamps: Tensor, key_timestamps: Tensor) -> tuple[Tensor, Tensor]:
    """[T + 1] query and key timestamps minus the batch's earliest, and a padding entry equal to it (0).

    int32 when every value then fits in 30 bits (gaps of up to 34 years fit in int32, and halve the
    memory traffic of the [Bg, Lq, Lk] gaps), int64 otherwise; the gaps are the same integers either way.
    """
    both = torch.cat([query_timestamps, key_timestamps])
    base = both.min() if both.numel() else both.new_zeros(())
    span = int(both.max() - base) if both.numel() else 0
    dtype = torch.int32 if span < 2**30 else torch.int64
    return tuple(_padded_with_zero((stamps - base).to(dtype)) for stamps in (query_timestamps, key_timestamps))


def _padded_with_zero(values: Tensor) -> Tensor:
    """[T + 1]: ``values`` and one 0 for the padding index T."""
    return torch.cat([values, values.new_zeros(1)])


def _token_index(starts: Tensor, lengths: Tensor, num_tokens: int) -> Tensor:
    """[Bg, Lg] row of each padded slot: start + position, or num_tokens past the sequence's end."""
    slot = torch.arange(int(lengths.max()), device=starts.device).unsqueeze(0)  # [1, Lg]
    return torch.where(slot < lengths.unsqueeze(1), starts.unsqueeze(1) + slot, num_tokens)
