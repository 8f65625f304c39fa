"""The FlashAttention-2 Transformer layer HSTU is timed against in ``scaling bench encoder`` (paper Section 4.2).

A textbook pre-norm Transformer block on a jagged batch X [T, d] (Vaswani et al., with the pre-norm
placement of Xiong et al., 2020, which the paper's Transformer baseline also uses)::

    X = X + W_o CausalAttention(Split(W_qkv LayerNorm(X)))
    X = X + W_2 GELU(W_1 LayerNorm(X))               (d_ff = 4d)

Dropout is off (the benchmark times the paper's configuration without it; ``p = 0`` is an identity
in PyTorch, so no module is kept). Attention is PyTorch's ``scaled_dot_product_attention``
restricted to one backend, so no call silently runs another kernel:

* ``flash-jagged`` (the default): the jagged Q, K, V become nested jagged tensors
  (``torch.nested``, ``layout=torch.jagged``) and SDPA runs FlashAttention-2's variable-length
  kernel on them: no padding anywhere, the same tokens HSTU's jagged kernel sees.
* ``flash-padded``: Q, K, V are right-padded to the batch's longest sequence and SDPA runs dense
  causal FlashAttention-2. Right padding needs no key mask under a causal mask (a real token never
  sees a later slot). Only attention pays for padding; the linear layers stay jagged. On the CPU
  this is PyTorch's CPU FlashAttention, which ``scaling bench encoder --dry-run`` counts activation
  bytes with: like the GPU kernel it keeps Q, K, V, the output and the log-sum-exp, nothing n x n.
* ``math-padded``: the same padded layout on PyTorch's math backend, for CPU tests (the nested
  jagged path has no causal CPU kernel).

This is a benchmark baseline, not a trainable model family: the Transformers the study trains
(SASRec, Transformer++) live in ``model/`` and attend through ``kernels.jagged_attention``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels.jagged import jagged_to_padded, offsets_from_lengths, padded_to_jagged, token_coordinates
from kernels.flops import attention_flops
from model.flops import matmul_flops

TransformerAttention = Literal["flash-jagged", "flash-padded", "math-padded"]
TRANSFORMER_ATTENTIONS: tuple[str, ...] = ("flash-jagged", "flash-padded", "math-padded")


@dataclass(frozen=True)
class JaggedLayout:
    """Where a jagged batch's sequences lie, with the length bounds known on the host (no GPU reads)."""

    offsets: Tensor  # [B+1] int64, on the batch's device
    max_len: int  # longest sequence (the padded length; SDPA's max_seqlen)
    min_len: int  # shortest sequence (nested SDPA refuses empty sequences and checks this)

    @classmethod
    def from_lengths(cls, lengths: Sequence[int], device: torch.device | str) -> "JaggedLayout":
        if not lengths or min(lengths) < 1:
            raise ValueError(f"a benchmark batch needs at least one sequence, each non-empty; got lengths {list(lengths)[:8]}")
        offsets = offsets_from_lengths(torch.tensor(list(lengths), dtype=torch.int64)).to(device)
        return cls(offsets=offsets, max_len=max(lengths), min_len=min(lengths))


class TransformerLayer(nn.Module):
    """One pre-norm Transformer block (LayerNorm, fused QKV, causal SDPA, W_o, GELU FFN) on jagged [T, d]."""

    def __init__(self, embedding_dim: int, num_heads: int, head_dim: int, ffn_dim: int,
                 attention: TransformerAttention = "flash-jagged") -> None:
        super().__init__()
        if attention not in TRANSFORMER_ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(TRANSFORMER_ATTENTIONS)}; got {attention!r}")
        self.num_heads, self.head_dim, self.attention = num_heads, head_dim, attention
        self.attention_norm = nn.LayerNorm(embedding_dim)
        self.qkv = nn.Linear(embedding_dim, 3 * num_heads * head_dim)
        self.output = nn.Linear(num_heads * head_dim, embedding_dim)
        self.ffn_norm = nn.LayerNorm(embedding_dim)
        self.ffn_in = nn.Linear(embedding_dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, embedding_dim)

    def attend(self, x: Tensor, layout: JaggedLayout) -> Tensor:
        """Causal multi-head softmax attention of normalised x [T, d] -> [T, d]."""
        tokens = x.shape[0]
        q, k, v = self.qkv(x).view(tokens, 3, self.num_heads, self.head_dim).unbind(1)  # [T, H, D] each
        attended = causal_sdpa(q, k, v, layout, self.attention)  # [T, H, D]
        return self.output(attended.reshape(tokens, self.num_heads * self.head_dim))

    def forward(self, x: Tensor, layout: JaggedLayout) -> Tensor:
        """[T, d] jagged inputs -> [T, d]."""
        x = x + self.attend(self.attention_norm(x), layout)
        return x + self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x))))

    def forward_flops(self, num_tokens: int, attention_pairs: int) -> float:
        """Forward FLOPs over a jagged batch (conventions of :mod:`model.flops`).

        QKV: [T, d] x [d, 3 H D]; attention: Q K^T and A V over the P causal pairs,
        sum n_i (n_i + 1) / 2, 2 P H (D + D); W_o: [T, H D] x [H D, d]; FFN: [T, d] x [d, d_ff]
        and back. LayerNorms, softmax, GELU and the residual additions count 0.
        """
        width, inner = self.qkv.in_features, self.num_heads * self.head_dim
        return (
            matmul_flops(num_tokens, width, 3 * inner)
            + attention_flops(attention_pairs, self.num_heads, self.head_dim, self.head_dim)
            + matmul_flops(num_tokens, inner, width)
            + 2 * matmul_flops(num_tokens, width, self.ffn_in.out_features)
        )


def causal_sdpa(q: Tensor, k: Tensor, v: Tensor, layout: JaggedLayout, attention: TransformerAttention) -> Tensor:
    """Causal softmax attention per sequence of a jagged batch: [T, H, D] x3 -> [T, H, D], scale 1/sqrt(D)."""
    flash, math_backend = SDPBackend.FLASH_ATTENTION, SDPBackend.MATH
    if attention == "flash-jagged":
        return nested_sdpa(q, k, v, layout, is_causal=True, backend=flash)
    if attention in ("flash-padded", "math-padded"):
        return padded_sdpa(q, k, v, layout, backend=flash if attention == "flash-padded" else math_backend)
    raise ValueError(f"attention must be one of {', '.join(TRANSFORMER_ATTENTIONS)}; got {attention!r}")


def nested_sdpa(q: Tensor, k: Tensor, v: Tensor, layout: JaggedLayout, *, is_causal: bool,
                backend: SDPBackend) -> Tensor:
    """SDPA on nested jagged tensors built over the jagged values: [T, H, D] x3 -> [T, H, D].

    All three share the one ``offsets`` tensor, hence one ragged dimension; ``min_seqlen`` and
    ``max_seqlen`` are passed so SDPA never reads them back from the GPU. FlashAttention's
    variable-length kernel is what SDPA runs for these on CUDA (causal needs CUDA).
    """
    def nested(values: Tensor) -> Tensor:  # [T, H, D] -> [B, H, j, D]
        return torch.nested.nested_tensor_from_jagged(
            values, layout.offsets, min_seqlen=layout.min_len, max_seqlen=layout.max_len).transpose(1, 2)

    with sdpa_kernel(backend):
        out = F.scaled_dot_product_attention(nested(q), nested(k), nested(v), is_causal=is_causal,
                                             scale=1.0 / math.sqrt(q.shape[-1]))
    return out.transpose(1, 2).values()  # [T, H, D]


def padded_sdpa(q: Tensor, k: Tensor, v: Tensor, layout: JaggedLayout, *, backend: SDPBackend) -> Tensor:
    """Causal SDPA on the batch right-padded to its longest sequence: [T, H, D] x3 -> [T, H, D]."""
    offsets, coordinates = layout.offsets, token_coordinates(layout.offsets)

    def padded(values: Tensor) -> Tensor:  # [T, H, D] -> [B, H, L, D]
        return jagged_to_padded(values, offsets, layout.max_len, coordinates=coordinates).transpose(1, 2)

    with sdpa_kernel(backend):
        out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), is_causal=True,
                                             scale=1.0 / math.sqrt(q.shape[-1]))  # [B, H, L, D]
    return padded_to_jagged(out.transpose(1, 2), offsets, coordinates=coordinates)
