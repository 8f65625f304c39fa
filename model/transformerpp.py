"""Transformer++: the LLaMA-style Transformer the paper compares HSTU against (Section 4.1.2, Table 5).

Touvron et al. (2023a): pre-norm residual blocks with RMSNorm, rotary position embeddings
(RoPE, Su et al.) on queries and keys, a SwiGLU feed-forward block (Shazeer, 2020), no biases,
and a final RMSNorm. One layer, for jagged inputs X [T, d]::

    N   = RMSNorm(X)
    X   = X + Dropout(W_o Attention(RoPE(W_q N), RoPE(W_k N), W_v N))     (causal softmax)
    N   = RMSNorm(X)
    X   = X + Dropout(W_2 (SiLU(W_1 N) * W_3 N))                           (SwiGLU)

Attention runs through :func:`kernels.jagged_attention` (softmax, scale 1/sqrt(d_qk)). RoPE
rotates each query/key channel pair (2j, 2j+1) by ``position * base^(-2j / d_qk)``, where the
position is the token's index inside its own sequence, so attention scores depend only on
position differences and never on batch neighbours. Ranking targets (``num_targets``) all sit at
the position right after the history, the same rule the kernels use for rab^{p}. RoPE is the only
position signal: build the input layer without absolute position embeddings. The layer also
runs M-FALCON's cached passes (``forward_history``, ``forward_candidates``: see
:mod:`model.mfalcon`), where keys are cached already rotated and candidates sit at position n.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels import AttentionLayout, CachedKeyValues
from kernels.attention import CachedAttentionBackend
from kernels.flops import attention_flops
from kernels.jagged import target_positions, token_positions
from model.dropout import Dropout
from model.flops import SequenceWorkload, matmul_flops
from model.inputs import JaggedSequences
from model.softmax_attention import CausalSoftmaxAttention

ROPE_BASE = 10_000.0  # LLaMA's rotary base
RMS_NORM_EPS = 1e-6  # LLaMA's RMSNorm epsilon
SWIGLU_MULTIPLE = 8  # hidden widths are rounded up to a multiple of this (tensor-core friendly)


def swiglu_hidden_dim(embedding_dim: int) -> int:
    """Default SwiGLU width: 8/3 d rounded up to a multiple of 8.

    SwiGLU has three d x f matrices instead of two, so f = 8/3 d keeps the parameters and FLOPs
    of the classic 4d two-matrix MLP (LLaMA rounds to 256; 8 keeps small models small).
    """
    return SWIGLU_MULTIPLE * math.ceil(int(8 * embedding_dim / 3) / SWIGLU_MULTIPLE)


def rotary_frequencies(dim: int, base: float = ROPE_BASE, device: torch.device | None = None) -> Tensor:
    """[dim / 2] float32 angular frequency of each channel pair: base^(-2j / dim)."""
    return base ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)


def apply_rotary(x: Tensor, positions: Tensor, base: float = ROPE_BASE) -> Tensor:
    """Rotate channel pairs (2j, 2j+1) of x [T, H, D] by positions [T] x frequency j; returns [T, H, D]."""
    dim = x.shape[-1]
    if dim % 2:
        raise ValueError(f"RoPE rotates channel pairs, so the per-head query/key width must be even; got {dim}")
    # Angles in float32 even for bf16 inputs: position * frequency needs the mantissa.
    angles = positions.to(torch.float32)[:, None] * rotary_frequencies(dim, base, x.device)[None, :]  # [T, D/2]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]  # [T, 1, D/2]
    pairs = x.float().reshape(*x.shape[:-1], dim // 2, 2)  # [T, H, D/2, 2]
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # [T, H, D/2, 2]
    return rotated.reshape(x.shape).to(x.dtype)


class TransformerPPLayer(CausalSoftmaxAttention, nn.Module):
    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        qk_dim: int,
        v_dim: int,
        ffn_dim: int,
        dropout: float,
        max_seq_len: int,
        rope_base: float = ROPE_BASE,
        attention_backend: str = "auto",
    ) -> None:
        super().__init__()
        if qk_dim % 2:
            raise ValueError(f"Transformer++ rotates channel pairs (RoPE): per-head qk_dim must be even; got {qk_dim}")
        self.num_heads, self.qk_dim, self.v_dim = num_heads, qk_dim, v_dim
        self.max_seq_len = max_seq_len
        self.rope_base = rope_base
        self.attention_backend = attention_backend
        self.attention_norm = nn.RMSNorm(embedding_dim, eps=RMS_NORM_EPS)
        self.query = nn.Linear(embedding_dim, num_heads * qk_dim, bias=False)
        self.key = nn.Linear(embedding_dim, num_heads * qk_dim, bias=False)
        self.value = nn.Linear(embedding_dim, num_heads * v_dim, bias=False)
        self.output = nn.Linear(num_heads * v_dim, embedding_dim, bias=False)
        self.ffn_norm = nn.RMSNorm(embedding_dim, eps=RMS_NORM_EPS)
        self.gate = nn.Linear(embedding_dim, ffn_dim, bias=False)  # W_1, through SiLU
        self.up = nn.Linear(embedding_dim, ffn_dim, bias=False)  # W_3
        self.down = nn.Linear(ffn_dim, embedding_dim, bias=False)  # W_2
        self.dropout = Dropout(dropout)

    def project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """RoPE(W_q N), RoPE(W_k N), W_v N with N = RMSNorm(x): [T, d], positions [T] -> [T, H, dqk] x2, [T, H, dv]."""
        tokens = x.shape[0]
        normed = self.attention_norm(x)
        q = apply_rotary(self.query(normed).reshape(tokens, self.num_heads, self.qk_dim), positions, self.rope_base)
        k = apply_rotary(self.key(normed).reshape(tokens, self.num_heads, self.qk_dim), positions, self.rope_base)
        v = self.value(normed).reshape(tokens, self.num_heads, self.v_dim)
        return q, k, v

    def finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """X + W_o attended [T, H, dv], then the SwiGLU block with its residual."""
        x = x + self.dropout(self.output(attended.reshape(x.shape[0], self.num_heads * self.v_dim)))
        return x + self.dropout(self.feed_forward(self.ffn_norm(x)))

    def feed_forward(self, x: Tensor) -> Tensor:
        """SwiGLU: W_2 (SiLU(W_1 x) * W_3 x), [T, d] -> [T, d]."""
        return self.down(F.silu(self.gate(x)) * self.up(x))

    def forward(self, x: Tensor, sequences: JaggedSequences, layout: AttentionLayout | None = None) -> Tensor:
        """One layer; ``layout``: the batch's :meth:`attention_layout`, shared by the encoder's layers."""
        q, k, v = self.project(x, token_positions(sequences.offsets, sequences.num_targets))
        return self.finish(x, self.attend(q, k, v, sequences, layout))

    def forward_history(self, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
        """:meth:`forward` over histories alone (plain causal), and their rotated K and V for the candidates."""
        q, k, v = self.project(x, token_positions(history.offsets))
        return self.finish(x, self.attend(q, k, v, history)), CachedKeyValues(k, v, history.offsets, history.timestamps)

    def forward_candidates(
        self, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend = "auto"
    ) -> Tensor:
        """:meth:`forward` for candidate tokens only, each at the position right after its history,
        attending over its cached history and itself."""
        q, k, v = self.project(x, target_positions(cache.offsets, candidates.offsets))
        attended = self.attend_candidates(q, k, v, candidates, cache, backend)
        return self.finish(x, attended)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Matmul FLOPs of one layer over ``workload`` (conventions in :mod:`model.flops`).

        With T tokens, P (query, key) pairs the mask allows (sum_i n_i (n_i + 1) / 2 when causal),
        width d, H heads of widths d_qk, d_v and SwiGLU width f: W_q, W_k: 2 x 2 T d H d_qk;
        W_v, W_o: 2 x 2 T d H d_v; Q K^T and A V: 2 P H (d_qk + d_v); W_1, W_3, W_2: 3 x 2 T d f.
        Norms, RoPE and softmax count 0.
        """
        tokens, d = workload.num_tokens, self.query.in_features
        projections = 2 * matmul_flops(tokens, d, self.num_heads * self.qk_dim) + 2 * matmul_flops(
            tokens, d, self.num_heads * self.v_dim
        )
        attention = attention_flops(workload.attention_pairs, self.num_heads, self.qk_dim, self.v_dim)
        feed_forward = 3 * matmul_flops(tokens, d, self.gate.out_features)
        return projections + attention + feed_forward


class TransformerPPEncoder(nn.Module):
    """A stack of :class:`TransformerPPLayer` followed by the final RMSNorm."""

    def __init__(self, layers: list[TransformerPPLayer], embedding_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.RMSNorm(embedding_dim, eps=RMS_NORM_EPS)

    def forward(self, x: Tensor, sequences: JaggedSequences) -> Tensor:
        layout = self.layers[0].attention_layout(sequences) if len(self.layers) else None  # once for all layers
        for layer in self.layers:
            x = layer(x, sequences, layout)
        return self.final_norm(x)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Sum of the layers' FLOPs; the final norm counts 0."""
        return sum(layer.forward_flops(workload) for layer in self.layers)
