"""The reference backend as a custom op: same outputs and gradients as plain autograd, counted FLOPs."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernels import RelativeAttentionBias, jagged_attention
from kernels.jagged import offsets_from_lengths
from kernels.reference import attention_mask, reference_jagged_attention
from kernels.flops import allowed_pairs


def make_inputs(bias_parts: str, with_targets: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = [5, 1, 0, 7, 3]
    max_seq_len, heads, dqk, dv = 8, 2, 4, 3
    total = sum(lengths)
    q, k = (torch.randn(total, heads, dqk, generator=generator, dtype=torch.float64) for _ in range(2))
    v = torch.randn(total, heads, dv, generator=generator, dtype=torch.float64)
    tables = {
        "position_weights": torch.randn(2 * max_seq_len - 1, generator=generator, dtype=torch.float64),
        "time_weights": torch.randn(21, generator=generator, dtype=torch.float64),
    }
    stamps = torch.cumsum(torch.randint(0, 5000, (total,), generator=generator), 0)
    num_targets = torch.tensor([2, 0, 0, 3, 1]) if with_targets else None
    return lengths, max_seq_len, (q, k, v), tables, stamps, num_targets


def make_bias(bias_parts: str, tables: dict, stamps: torch.Tensor) -> RelativeAttentionBias | None:
    if bias_parts == "none":
        return None
    with_time = bias_parts == "pos_time"
    return RelativeAttentionBias(
        position_weights=tables["position_weights"],
        time_weights=tables["time_weights"] if with_time else None,
        query_timestamps=stamps + 100 if with_time else None,
        key_timestamps=stamps if with_time else None,
    )


@pytest.mark.parametrize("activation", ["silu", "softmax"])
@pytest.mark.parametrize(
    "with_targets, contextual_len, bias_parts",
    [(False, 0, "none"), (False, 0, "pos"), (True, 0, "pos_time"), (False, 2, "pos"), (True, 2, "pos_time")],
)
def test_op_gradients_match_autograd_through_the_reference(activation, with_targets, contextual_len, bias_parts):
    lengths, max_seq_len, qkv, tables, stamps, num_targets = make_inputs(bias_parts, with_targets)
    offsets = offsets_from_lengths(torch.tensor(lengths))
    upstream = torch.randn(qkv[2].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kwargs = dict(max_seq_len=max_seq_len, activation=activation, scale=1 / math.sqrt(4),
                  num_targets=num_targets, contextual_len=contextual_len)

    def gradients(attention):
        leaves = [t.detach().clone().requires_grad_() for t in qkv]
        leaf_tables = {name: t.detach().clone().requires_grad_() for name, t in tables.items()}
        out = attention(*leaves, offsets, bias=make_bias(bias_parts, leaf_tables, stamps), **kwargs)
        (out * upstream).sum().backward()
        used = [leaf_tables[name] for name in ("position_weights", "time_weights")[: {"none": 0, "pos": 1, "pos_time": 2}[bias_parts]]]
        return out, [t.grad for t in leaves + used]

    got_out, got = gradients(lambda *a, **kw: jagged_attention(*a, backend="reference", **kw))
    want_out, want = gradients(reference_jagged_attention)
    torch.testing.assert_close(got_out, want_out)
    for got_grad, want_grad in zip(got, want, strict=True):
        torch.testing.assert_close(got_grad, want_grad)


@pytest.mark.parametrize("with_targets", [False, True])
@pytest.mark.parametrize("contextual_len", [0, 2])
def test_allowed_pairs_counts_the_mask(with_targets, contextual_len):
    lengths = torch.tensor([5, 1, 0, 7, 3])
    num_targets = torch.tensor([2, 0, 0, 3, 1]) if with_targets else None
    mask = attention_mask(lengths, num_targets, contextual_len, int(lengths.max()))  # [B, L, L]
    real_query = torch.arange(int(lengths.max())).view(1, -1, 1) < lengths.view(-1, 1, 1)
    assert allowed_pairs(offsets_from_lengths(lengths), num_targets, contextual_len) == int((mask & real_query).sum())


def test_flop_counter_counts_jagged_causal_work_not_padded_matrices():
    lengths = torch.tensor([50, 3, 20])
    heads, dqk, dv = 2, 8, 4
    total = int(lengths.sum())
    q, k = (torch.randn(total, heads, dqk, requires_grad=True) for _ in range(2))
    v = torch.randn(total, heads, dv, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = jagged_attention(q, k, v, offsets_from_lengths(lengths), max_seq_len=64)
    pairs = sum(n * (n + 1) // 2 for n in lengths.tolist())
    forward = 2 * pairs * heads * (dqk + dv)
    assert counter.get_total_flops() == forward
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * forward
