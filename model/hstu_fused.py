"""HSTU's Eq. 1 and Eq. 3 as two fused operators that keep only their inputs for backward.

This is the paper's Section 3.3 design: SiLU(f1(LayerNorm(X))) and f2(Dropout(LayerNorm(A V) * U))
each run as one operator whose backward recomputes what lies between input and output instead of
keeping it. Left to autograd, Eq. 1 keeps X, LayerNorm(X) and its statistics, f1's output before
SiLU and the SiLU output (the last is kept by the attention and the U gate anyway): 20d bytes per
token in bf16 at h d_v = h d_qk = d. Fused, it keeps X alone (2d); the SiLU output is the
function's result, which the attention and the gate hold. Eq. 3 left to autograd keeps A V,
LayerNorm(A V), its statistics and the gated product (6d); fused, A V alone (2d), U being part of
the SiLU output already kept. An HSTU layer thus keeps X, U V Q K and A V: 12d, under the
paper's 14d, which also keeps LayerNorm(X).

Each runs through ``torch.utils.checkpoint`` (the reentrant variant, which keeps exactly the
inputs as saved tensors, so ``saved_activation_bytes`` counts them): backward re-runs the very same
PyTorch operations (layer norm, the f1 matmul, SiLU; layer norm, gate, dropout, f2) under the
autocast state and, for dropout, the random-number state of the forward, and differentiates them
with autograd: gradients are bit-identical to the unfused layer's. (The reentrant variant supports
``backward()``, which training calls, not ``torch.autograd.grad``.) The price is the
recomputation: one f1 and one f2 matmul more per training step (12-30% of a CPU training step,
which is why HSTULayer fuses only on CUDA by default). U, V, Q, K come out as separate contiguous
tensors (an exact copy), so the Triton kernels read Q, K, V in place instead of keeping contiguous
copies of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from model.dropout import dropout as apply_dropout


def _split_silu_projection(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    """SiLU(f1(LayerNorm(X))) exactly as the unfused layer computes it: [T, d] -> [T, H (2 d_v + 2 d_qk)]."""
    return F.silu(F.linear(F.layer_norm(x, x.shape[-1:], None, None, eps), weight, bias))


def _gated_output(attended: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                  dropout: float, training: bool) -> Tensor:
    """f2(Dropout(LayerNorm(A V) * U)) exactly as the unfused layer computes it."""
    normed = F.layer_norm(attended, attended.shape[-1:], None, None, eps)
    return F.linear(apply_dropout(normed * gate, dropout, training), weight, bias)


def stream_projection(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                      sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """Split(SiLU(f1(LayerNorm(X)))) into streams of ``sizes`` channels (Eq. 1), keeping only X for backward.

    The streams are contiguous copies (exact): the attention kernels then read Q, K, V in place
    instead of copying them, and no stream keeps the whole SiLU output alive through a view.
    """
    def streams(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, ...]:
        activated = _split_silu_projection(x, weight, bias, eps)
        return tuple(stream.contiguous() for stream in activated.split(list(sizes), dim=-1))

    # Eq. 1 draws no random numbers: no generator state to keep.
    return checkpoint(streams, x, weight, bias, use_reentrant=True, preserve_rng_state=False)


def gated_output(attended: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, *, eps: float,
                 dropout: float, training: bool) -> Tensor:
    """f2(Dropout(LayerNorm(A V) * U)) (Eq. 3), keeping only A V and U for backward (dropout redrawn alike)."""
    return checkpoint(_gated_output, attended, gate, weight, bias, eps, dropout, training, use_reentrant=True)
