"""The per-batch attention layout: optimal length groups, row blocks that see every allowed key, slots that
cover every (token, head) once, bias indices that are rab^{p,t}'s rows and the reference mask, and time
buckets computed pairwise exactly as ``bucketize_time_gaps`` computes them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_cases import MASKS, make_problem
from kernels.bias import bucketize_time_gaps, pairwise_time_buckets
from kernels.flops import allowed_pairs
from kernels.jagged import token_positions
from kernels.layout import build_attention_layout, length_groups, row_blocks, table_size
from kernels.reference import attention_mask


def padded_cost(lengths: np.ndarray, groups: list[np.ndarray], group_cost: int) -> float:
    return sum(len(group) * float(lengths[group].max()) ** 2 + group_cost for group in groups)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(lengths=st.lists(st.integers(0, 50), min_size=1, max_size=7), group_cost=st.sampled_from([1, 300, 5000]))
def test_length_groups_are_the_cheapest_cut(lengths: list[int], group_cost: int) -> None:
    lengths_array = np.array(lengths)
    groups = length_groups(lengths_array, group_cost)
    non_empty = [index for index, length in enumerate(lengths) if length > 0]
    assert sorted(int(i) for group in groups for i in group) == non_empty  # each non-empty sequence once
    order = sorted(non_empty, key=lambda index: -lengths[index])
    best = min(  # every cut of the sorted sequences into contiguous groups
        (padded_cost(lengths_array, [np.array(order[a:b]) for a, b in zip((0, *cuts), (*cuts, len(order)))], group_cost)
         for size in range(len(order)) for cuts in itertools.combinations(range(1, len(order)), size)),
        default=0.0,
    )
    assert padded_cost(lengths_array, groups, group_cost) == pytest.approx(best)


@pytest.mark.parametrize("length, block_rows", [(1, 64), (64, 64), (65, 64), (200, 64), (200, 7), (13, 1)])
def test_row_blocks_cut_the_rows_into_near_equal_blocks(length: int, block_rows: int) -> None:
    blocks = row_blocks(length, block_rows)
    assert [blocks[0].start, blocks[-1].stop] == [0, length]
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
    sizes = [block.stop - block.start for block in blocks]
    assert max(sizes) <= block_rows and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("mask", MASKS)
def test_layout_indices_are_the_reference_bias_and_mask(mask: str, heads: int) -> None:
    lengths = [35, 0, 1, 17, 9, 9, 3, 30]
    problem = make_problem(lengths, mask=mask, bias="position+time-log", dtype=torch.float32, device="cpu", seed=1,
                           heads=heads, contextual_len=11)
    bias = problem.bias
    layout = build_attention_layout(problem.offsets, max_seq_len=problem.max_seq_len, num_heads=heads, bias=bias,
                                    num_targets=problem.num_targets, contextual_len=problem.contextual_len,
                                    group_cost_pairs=64, block_rows=8)
    tokens, buckets = sum(lengths), bias.time_weights.numel()
    masked = table_size(problem.max_seq_len, True, buckets - 1) - 1
    assert layout.allowed_pairs == allowed_pairs(problem.offsets, problem.num_targets, problem.contextual_len)
    assert torch.equal(layout.bias_index, torch.cat([block.bias_index.reshape(-1) for block in layout.blocks]))

    # Every (token, head) has exactly one query slot and one key slot, and reads itself there.
    for rows, token_rows in ((layout.query_rows, layout.token_query_rows), (layout.key_rows, layout.token_key_rows)):
        real = rows < tokens * heads
        assert sorted(rows[real].tolist()) == list(range(tokens * heads))
        assert torch.equal(rows[token_rows], torch.arange(tokens * heads))

    # Each allowed pair reads rab^{p,t}'s (position row, time bucket) entry; each forbidden one the masked entry.
    positions = token_positions(problem.offsets, problem.num_targets)
    starts, counts = problem.offsets[:-1].tolist(), [0] * len(lengths)
    for block in layout.blocks:
        query_tokens = layout.query_rows[block.query_offset:][: block.batch * (block.stop - block.start)] // heads
        key_tokens = layout.key_rows[block.key_offset:][: block.batch * block.group_length] // heads
        query_tokens = query_tokens.view(block.batch, -1)
        key_tokens = key_tokens.view(block.batch, block.group_length)
        for b in range(block.batch):
            sequence = next(s for s in range(len(lengths)) if lengths[s] and starts[s] == int(key_tokens[b, 0]))
            length = lengths[sequence]
            targets = None if problem.num_targets is None else problem.num_targets[sequence: sequence + 1]
            allowed = attention_mask(torch.tensor([length]), targets, problem.contextual_len, block.group_length)[0]
            assert not allowed[block.start: block.stop, block.num_keys:].any(), "a block misses a key its rows see"
            for i, j in itertools.product(range(block.stop - block.start), range(block.num_keys)):
                entry = int(block.bias_index[b, i, j])
                query = block.start + i
                if not allowed[query, j]:
                    assert entry == masked
                    continue
                q_token, k_token = int(query_tokens[b, i]), int(key_tokens[b, j])
                if q_token == tokens:  # a padding slot sees itself (never an empty softmax row); it is not a pair
                    continue
                position_row = int(positions[k_token] - positions[q_token]) + problem.max_seq_len - 1
                position_row = min(max(position_row, 0), 2 * problem.max_seq_len - 2)
                gap = bias.query_timestamps[q_token] - bias.key_timestamps[k_token]
                bucket = int(bucketize_time_gaps(gap.view(1), buckets - 1, "log")[0])
                assert entry == position_row * buckets + bucket
                counts[sequence] += 1
    # Every allowed pair of every sequence was visited in exactly one block.
    for sequence, length in enumerate(lengths):
        targets = None if problem.num_targets is None else problem.num_targets[sequence: sequence + 1]
        mask = attention_mask(torch.tensor([length]), targets, problem.contextual_len, length)
        assert counts[sequence] == int(mask.sum())


def old_bucketize(gaps: torch.Tensor, num_buckets: int, fn: str) -> torch.Tensor:
    """The bucketisation as it was written before the in-place rewrite (int64 abs and clamp, then float32)."""
    magnitude = gaps.abs().clamp(min=1).to(torch.float32)
    buckets = torch.log(magnitude) / 0.301 if fn == "log" else torch.sqrt(magnitude)
    return buckets.to(torch.int64).clamp(min=0, max=num_buckets)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16), spread=st.sampled_from([2.0, 3.0, 6.0, 8.0]), fn=st.sampled_from(["log", "sqrt"]),
       num_buckets=st.sampled_from([4, 128, 10**6]))
def test_pairwise_time_buckets_equal_bucketing_the_int64_gaps(seed: int, spread: float, fn: str, num_buckets: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    base = 1_700_000_000 + torch.randint(-10**6, 10**6, (3, 1), generator=generator)
    query = base + (torch.randn(3, 40, generator=generator) * spread).exp().to(torch.int64)
    key = base - (torch.randn(3, 30, generator=generator) * spread).exp().to(torch.int64)
    gaps = query.unsqueeze(2) - key.unsqueeze(1)  # [3, 40, 30] int64, up to ~1e8 s and more
    want = old_bucketize(gaps, num_buckets, fn)
    assert torch.equal(bucketize_time_gaps(gaps, num_buckets, fn), want)
    got = pairwise_time_buckets(query, key, num_buckets, fn)
    assert got.dtype == torch.int32 and torch.equal(got.to(torch.int64), want)
    base = torch.minimum(query.min(), key.min())
    if int(torch.maximum(query.max(), key.max()) - base) < 2**30:  # the layout's int32 path
        rebased = pairwise_time_buckets((query - base).to(torch.int32), (key - base).to(torch.int32), num_buckets, fn)
        assert torch.equal(rebased, got)
