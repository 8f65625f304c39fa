"""cached_target_attention equals the target rows of jagged_attention over [history ; candidates]."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import CachedKeyValues, RelativeAttentionBias, cached_target_attention, jagged_attention
from kernels.jagged import offsets_from_lengths



def random_case(history_lengths, target_counts, heads, dqk, dv, max_seq_len, with_position, with_time, seed):
    """Random q, k, v of concatenated [history_b ; candidates_b] sequences plus their rab inputs."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [h + m for h, m in zip(history_lengths, target_counts)]
    total = sum(lengths)
    q = torch.randn(total, heads, dqk, generator=generator, dtype=torch.float64)
    k = torch.randn(total, heads, dqk, generator=generator, dtype=torch.float64)
    v = torch.randn(total, heads, dv, generator=generator, dtype=torch.float64)
    stamps = torch.randint(0, 10**7, (total,), generator=generator)
    query_stamps = stamps + torch.randint(0, 10**5, (total,), generator=generator)
    # Large tables so a wrong position or bucket changes the output visibly.
    position = torch.randn(2 * max_seq_len - 1, generator=generator, dtype=torch.float64) if with_position else None
    time = torch.randn(129, generator=generator, dtype=torch.float64) if with_time else None
    bias = RelativeAttentionBias(position, time, query_stamps if with_time else None, stamps if with_time else None)
    return q, k, v, stamps, query_stamps, lengths, bias


def split_rows(history_lengths, target_counts):
    """Row indices of the history tokens and of the candidate tokens in the concatenated batch."""
    history_rows, target_rows, start = [], [], 0
    for h, m in zip(history_lengths, target_counts):
        history_rows += range(start, start + h)
        target_rows += range(start + h, start + h + m)
        start += h + m
    return torch.tensor(history_rows, dtype=torch.int64), torch.tensor(target_rows, dtype=torch.int64)


@settings(max_examples=25, deadline=None)
@given(
    history_lengths=st.lists(st.integers(0, 9), min_size=1, max_size=3),
    targets=st.lists(st.integers(1, 5), min_size=3, max_size=3),
    heads=st.integers(1, 2),
    activation=st.sampled_from(["silu", "softmax"]),
    rab=st.sampled_from(["none", "pos", "time", "pos_time"]),
    seed=st.integers(0, 2**16),
)
def test_cached_matches_uncached_target_rows(history_lengths, targets, heads, activation, rab, seed):
    target_counts = targets[: len(history_lengths)]
    max_seq_len = 16
    with_position, with_time = rab in ("pos", "pos_time"), rab in ("time", "pos_time")
    q, k, v, stamps, query_stamps, lengths, bias = random_case(
        history_lengths, target_counts, heads, 3, 4, max_seq_len, with_position, with_time, seed
    )
    num_targets = torch.tensor(target_counts)
    full = jagged_attention(
        q, k, v, offsets_from_lengths(torch.tensor(lengths)), max_seq_len=max_seq_len, activation=activation,
        scale=0.7, bias=bias if rab != "none" else None, num_targets=num_targets, backend="reference",
    )
    history_rows, target_rows = split_rows(history_lengths, target_counts)
    cache = CachedKeyValues(k[history_rows], v[history_rows], offsets_from_lengths(torch.tensor(history_lengths)),
                            stamps[history_rows])
    candidate_bias = RelativeAttentionBias(
        bias.position_weights, bias.time_weights,
        query_stamps[target_rows] if with_time else None, stamps[target_rows] if with_time else None,
    )
    cached = cached_target_attention(
        q[target_rows], k[target_rows], v[target_rows], offsets_from_lengths(num_targets), cache,
        max_seq_len=max_seq_len, activation=activation, scale=0.7, bias=candidate_bias if rab != "none" else None,
    )
    torch.testing.assert_close(cached, full[target_rows], rtol=1e-10, atol=1e-12)


def test_rejects_unknown_backend_and_mismatched_cache():
    q = k = torch.randn(3, 1, 4)
    v = torch.randn(3, 1, 4)
    cache = CachedKeyValues(torch.randn(5, 1, 4), torch.randn(5, 1, 4), torch.tensor([0, 5]))
    targets = torch.tensor([0, 3])
    with pytest.raises(ValueError, match="no 'triton' backend"):
        cached_target_attention(q, k, v, targets, cache, max_seq_len=8, backend="triton")
    with pytest.raises(ValueError, match="same B users"):
        cached_target_attention(q, k, v, torch.tensor([0, 1, 3]), cache, max_seq_len=8)
    wide = CachedKeyValues(torch.randn(5, 1, 6), torch.randn(5, 1, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="matching the candidates"):
        cached_target_attention(q, k, v, targets, wide, max_seq_len=8)
    time_bias = RelativeAttentionBias(None, torch.zeros(9), torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="history timestamps"):
        cached_target_attention(q, k, v, targets, cache, max_seq_len=8, bias=time_bias)
