"""Activation memory per token per layer in bf16, counted as ``scaling bench encoder`` counts it (paper Section 3.3).

HSTU keeps X, U V Q K and A V: 12d bytes per token at h d_v = h d_qk = d (the paper's fused design
keeps 14d, LayerNorm(X) included). The Transformer layer, attention counted as a FlashAttention
kernel keeps it (Q, K, V, output, log-sum-exp; CPU flash SDPA), keeps 34d + 56 bytes: the paper's
33d less the two dropout masks (the benchmark has none), plus the padded attention output beside
the jagged one W_o keeps (2d), its log-sum-exp (4 h bytes), LayerNorm statistics and the padding
indices.
"""

from __future__ import annotations

import pytest

from scaling.benchmarks.encoder import (
    LayerShape, hstu_paper_activation_bytes, layer_activation_bytes_per_token, TARGET_MEMORY_RATIO,
)

FULL_BATCH = [64] * 8  # the benchmark's full batch at n = 64
JAGGED_BATCH = [64, 30, 17, 5, 64, 50]
HSTU_BYTES_PER_D = 12
TRANSFORMER_BYTES_PER_D, TRANSFORMER_EXTRA_BYTES = 34, 56


@pytest.mark.parametrize("d", [64, 256, 512])
def test_hstu_keeps_12d_bytes_per_token_whatever_the_batch_and_rab(d: int) -> None:
    shape = LayerShape.paper_scaled(d)
    counted = {layer_activation_bytes_per_token("hstu", shape, lengths, rab=rab)
               for lengths in (FULL_BATCH, JAGGED_BATCH) for rab in (False, True)}
    assert counted == {HSTU_BYTES_PER_D * d}
    assert HSTU_BYTES_PER_D * d <= hstu_paper_activation_bytes(d, shape.num_heads, shape.head_dim, shape.head_dim)


@pytest.mark.parametrize("d", [64, 256, 512])
def test_hstu_keeps_at_most_half_of_the_transformer_layer(d: int) -> None:
    shape = LayerShape.paper_scaled(d)
    hstu = layer_activation_bytes_per_token("hstu", shape, FULL_BATCH)
    transformer = layer_activation_bytes_per_token("transformer", shape, FULL_BATCH)
    assert transformer == TRANSFORMER_BYTES_PER_D * d + TRANSFORMER_EXTRA_BYTES
    assert hstu / transformer == pytest.approx(12 / (34 + 56 / d), rel=1e-12)
    assert hstu / transformer <= 0.36 < TARGET_MEMORY_RATIO
