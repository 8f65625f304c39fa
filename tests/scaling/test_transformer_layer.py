"""The FlashAttention-2 Transformer baseline layer, on the CPU: shapes, gradients, causality, FLOPs, nested plumbing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend
from torch.utils.flop_counter import FlopCounterMode

from scaling.benchmarks.transformer_layer import JaggedLayout, TransformerLayer, nested_sdpa

torch.set_num_threads(1)
LENGTHS = [5, 1, 7]


def small_layer(seed: int = 0) -> TransformerLayer:
    torch.manual_seed(seed)
    return TransformerLayer(embedding_dim=16, num_heads=2, head_dim=8, ffn_dim=64, attention="math-padded").double()


def test_forward_keeps_the_jagged_shape_and_backward_reaches_every_weight_and_token() -> None:
    layer, layout = small_layer(), JaggedLayout.from_lengths(LENGTHS, "cpu")
    x = torch.randn(sum(LENGTHS), 16, dtype=torch.float64, requires_grad=True)
    out = layer(x, layout)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and bool((x.grad.abs().sum(-1) > 0).all())
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in layer.parameters())


def test_a_token_only_influences_later_tokens_of_its_own_sequence() -> None:
    layer, layout = small_layer(), JaggedLayout.from_lengths(LENGTHS, "cpu")
    x = torch.randn(sum(LENGTHS), 16, dtype=torch.float64)
    changed_row = 8  # third sequence (rows 6..12), position 2
    nudged = x.clone()
    nudged[changed_row] += torch.randn(16, dtype=torch.float64)  # not a constant shift: LayerNorm removes those
    moved = (layer(nudged, layout) - layer(x, layout)).abs().sum(-1) > 1e-9
    assert moved.tolist() == [False] * 8 + [True] * 5


def test_a_jagged_batch_computes_each_sequence_as_if_it_were_alone() -> None:
    layer = small_layer()
    x = torch.randn(sum(LENGTHS), 16, dtype=torch.float64)
    together = layer(x, JaggedLayout.from_lengths(LENGTHS, "cpu"))
    start = 0
    for length in LENGTHS:
        alone = layer(x[start:start + length], JaggedLayout.from_lengths([length], "cpu"))
        torch.testing.assert_close(together[start:start + length], alone)
        start += length


def test_forward_flops_count_the_causal_pairs_of_what_dense_math_attention_multiplies() -> None:
    layer, lengths = small_layer().float(), [6, 6, 6]
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(18, 16), JaggedLayout.from_lengths(lengths, "cpu"))
    pairs, heads, head_dim = 3 * (6 * 7 // 2), 2, 8  # n (n + 1) / 2 causal pairs per sequence
    full_attention = 2 * 2 * 3 * 36 * heads * head_dim  # dense math: Q K^T and A V over every (i, j)
    causal_attention = 2 * 2 * pairs * heads * head_dim
    assert layer.forward_flops(18, pairs) == counter.get_total_flops() - full_attention + causal_attention


def test_nested_jagged_tensors_carry_each_sequence_through_sdpa() -> None:
    """The nested path's plumbing (offsets, transposes, values) on the CPU, where only non-causal math runs."""
    layout = JaggedLayout.from_lengths(LENGTHS, "cpu")
    q, k, v = (torch.randn(sum(LENGTHS), 2, 8) for _ in range(3))
    out = nested_sdpa(q, k, v, layout, is_causal=False, backend=SDPBackend.MATH)
    assert out.shape == (sum(LENGTHS), 2, 8)
    start = 0
    for length in LENGTHS:
        rows = slice(start, start + length)
        alone = F.scaled_dot_product_attention(*(t[rows].transpose(0, 1) for t in (q, k, v))).transpose(0, 1)
        torch.testing.assert_close(out[rows], alone, rtol=1e-5, atol=1e-6)
        start += length


def test_bad_attention_and_empty_sequences_are_rejected_where_they_are_given() -> None:
    with pytest.raises(ValueError, match="flash-jagged"):
        TransformerLayer(16, 2, 8, 64, attention="flash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        JaggedLayout.from_lengths([3, 0], "cpu")
