"""The padded reference attention agrees with a plain per-sequence, per-pair loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernels import RelativeAttentionBias, jagged_attention
from kernels.bias import bucketize_time_gaps
from kernels.jagged import offsets_from_lengths


def naive_attention(q, k, v, lengths, *, max_seq_len, activation, scale, bias, num_targets, contextual_len):
    """Loop over sequences, queries and keys: the semantics written out one pair at a time."""
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float64)
    start = 0
    for b, length in enumerate(lengths):
        targets = int(num_targets[b]) if num_targets is not None else 0
        history_end = length - targets
        for i in range(length):
            allowed, scores = [], []
            for j in range(length):
                ok = (
                    j == i
                    or j < contextual_len
                    or (contextual_len <= j < history_end and (j <= i or i >= history_end))
                )
                if not ok:
                    continue
                s = scale * (q[start + i].double() * k[start + j].double()).sum(-1)  # [H]
                if bias is not None and bias.position_weights is not None:
                    p_i, p_j = min(i, history_end), min(j, history_end)
                    s = s + bias.position_weights[p_j - p_i + max_seq_len - 1].double()
                if bias is not None and bias.time_weights is not None:
                    gap = bias.query_timestamps[start + i] - bias.key_timestamps[start + j]
                    bucket = bucketize_time_gaps(gap.view(1), bias.time_weights.numel() - 1, bias.time_bucket_fn)
                    s = s + bias.time_weights[bucket[0]].double()
                allowed.append(j)
                scores.append(s)
            scores = torch.stack(scores)  # [J, H]
            weights = F.silu(scores) / max_seq_len if activation == "silu" else torch.softmax(scores, dim=0)
            values = torch.stack([v[start + j].double() for j in allowed])  # [J, H, Dv]
            out[start + i] = (weights.unsqueeze(-1) * values).sum(0)
        start += length
    return out


@pytest.mark.parametrize("activation", ["silu", "softmax"])
@pytest.mark.parametrize("with_targets", [False, True])
@pytest.mark.parametrize("contextual_len", [0, 2])
@pytest.mark.parametrize("bias_parts", ["none", "pos", "pos_time"])
def test_reference_matches_naive_loop(activation, with_targets, contextual_len, bias_parts):
    generator = torch.Generator().manual_seed(0)
    lengths = [5, 1, 0, 7, 3]
    max_seq_len, heads, dqk, dv = 8, 2, 4, 3
    total = sum(lengths)
    q = torch.randn(total, heads, dqk, generator=generator)
    k = torch.randn(total, heads, dqk, generator=generator)
    v = torch.randn(total, heads, dv, generator=generator)
    offsets = offsets_from_lengths(torch.tensor(lengths))
    num_targets = torch.tensor([2, 0, 0, 3, 1]) if with_targets else None
    bias = None
    if bias_parts != "none":
        stamps = torch.cumsum(torch.randint(0, 5000, (total,), generator=generator), 0)
        bias = RelativeAttentionBias(
            position_weights=torch.randn(2 * max_seq_len - 1, generator=generator),
            time_weights=torch.randn(21, generator=generator) if bias_parts == "pos_time" else None,
            query_timestamps=stamps + 100 if bias_parts == "pos_time" else None,
            key_timestamps=stamps if bias_parts == "pos_time" else None,
        )
    kwargs = dict(max_seq_len=max_seq_len, activation=activation, scale=1 / math.sqrt(dqk), bias=bias,
                  num_targets=num_targets, contextual_len=contextual_len)
    got = jagged_attention(q, k, v, offsets, backend="reference", **kwargs)
    want = naive_attention(q, k, v, lengths, **kwargs)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_sequence_output_does_not_depend_on_batch_neighbours():
    generator = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(9, 2, 4, generator=generator) for _ in range(3))
    together = jagged_attention(q, k, v, torch.tensor([0, 4, 9]), max_seq_len=16)
    alone = jagged_attention(q[:4], k[:4], v[:4], torch.tensor([0, 4]), max_seq_len=16)
    torch.testing.assert_close(together[:4], alone)


def test_triton_backend_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q = torch.randn(3, 1, 2)
    with pytest.raises(ValueError, match="needs CUDA"):
        jagged_attention(q, q, q, torch.tensor([0, 3]), max_seq_len=4, backend="triton")


def test_time_buckets_follow_the_log_rule():
    gaps = torch.tensor([0, 1, 2, 3, 10, 3600, 86400, -86400, 10**12])
    buckets = bucketize_time_gaps(gaps, 128, "log")
    expected = [min(int(math.log(max(abs(g), 1)) / 0.301), 128) for g in gaps.tolist()]
    assert buckets.tolist() == expected
