"""The fused HSTU layer (model/hstu_fused.py) on the Triton kernels: Q, K, V reach them without copies.

Under Triton's CPU interpreter (conftest.py) in fp32: the layer keeps X, U, V, Q, K and A V (6 x d
floats per token at h d_v = h d_qk = d, 12d bytes in bf16) where unfused it also kept the kernels'
contiguous copies of Q, K, V; and it trains bit-identically to the unfused layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from model.hstu import HSTULayer
from scaling.benchmarks.measure import saved_activation_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
from jagged_inputs import sequences_of  # noqa: E402

D, LENGTHS = 32, [16, 9, 16]


def run(mode: str, x: torch.Tensor):
    torch.manual_seed(0)
    layer = HSTULayer(D, 2, 16, 16, dropout=0.0, max_seq_len=16, rab="pos_time", attention_backend="triton",
                      recompute_in_backward=mode)
    sequences = sequences_of(LENGTHS)
    x = x.detach().requires_grad_()
    excluded = [*layer.parameters(), sequences.offsets, sequences.timestamps, sequences.query_timestamps]
    kept = saved_activation_bytes(lambda: layer(x, sequences), excluded)
    layer(x, sequences).square().sum().backward()
    return kept / x.shape[0], [x.grad] + [parameter.grad for parameter in layer.parameters()]


def test_fused_layer_keeps_6d_floats_per_token_and_the_unfused_gradients() -> None:
    x = torch.randn(sum(LENGTHS), D, generator=torch.Generator().manual_seed(1))
    fused_bytes, fused_grads = run("always", x)
    plain_bytes, plain_grads = run("never", x)
    assert fused_bytes == 6 * D * 4
    # Unfused it also kept LN(X) (d), f1's output before SiLU (4d), the kernels' Q, K, V copies (3d), LN(A V)
    # and the gate product (d each), and the two norms' means and reciprocal deviations (4 floats).
    assert plain_bytes == fused_bytes + 10 * D * 4 + 4 * 4
    assert all(torch.equal(got, want) for got, want in zip(fused_grads, plain_grads))
