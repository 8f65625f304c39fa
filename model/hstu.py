"""HSTU: the Hierarchical Sequential Transduction Unit encoder (paper Section 3, Eq. 1-3).

One layer, for jagged inputs X [T, d]::

    U, V, Q, K = Split(SiLU(f1(LayerNorm(X))))                       (Eq. 1)
    A(X)V(X)   = SiLU(Q K^T + rab^{p,t}) V / N, causal, no softmax     (Eq. 2)
    Y(X)       = f2(LayerNorm(A(X)V(X)) * U)                          (Eq. 3)
    X'         = X + Dropout(Y(X))

f1 is one fused linear producing all four streams; f2 is one linear. The input LayerNorm is
the "input layer norm" of Section 3.3's activation-memory accounting and of the reference
implementation; neither LayerNorm has affine parameters (U already scales every channel), and
both use the reference's epsilon, LAYER_NORM_EPS.
rab^{p,t} is one learned bias over relative position plus one over bucketised time gaps,
shared by the heads of a layer (Table 9); either can be switched off. The attention maths
lives in :mod:`kernels` behind ``jagged_attention``; what it needs from the batch alone (masks,
time buckets: ``attention_layout``) the encoder builds once per forward for all its layers. The
layer keeps 12d bytes per token for backward in bf16 when Eq. 1 and Eq. 3 run fused
(:mod:`model.hstu_fused`, ``recompute_in_backward``; the paper's Section 3.3 counts 14d). The
layer also runs M-FALCON's cached passes (``forward_history``, ``forward_candidates``: see
:mod:`model.mfalcon`) with the same Eq. 1 and Eq. 3 code as its forward.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from kernels import (
    AttentionLayout, CachedKeyValues, RelativeAttentionBias, attention_layout, cached_target_attention, jagged_attention,
)
from kernels.attention import CachedAttentionBackend
from kernels.bias import TimeBucketFn
from kernels.flops import attention_flops
from model.dropout import Dropout
from model.flops import SequenceWorkload, matmul_flops
from model.hstu_fused import gated_output, stream_projection
from model.inputs import JaggedSequences

RabMode = Literal["pos_time", "pos", "none"]
# The reference implementation's LayerNorm epsilon. It matters: at initialisation the attention
# output's per-token variance is ~1e-9 to 1e-7, far below any usual epsilon, so the norm before the
# U gate acts as a fixed gain of about 1/sqrt(eps); PyTorch's default 1e-5 starts the gated branch
# and its gradients sqrt(10) = 3.2x smaller than the paper's model.
LAYER_NORM_EPS = 1e-6
AttentionKind = Literal["pointwise", "softmax"]
# When a layer runs Eq. 1 and Eq. 3 fused, keeping only their inputs and recomputing the rest in
# backward (model/hstu_fused.py: 12d bytes per token in bf16 instead of 26d, one f1 and one f2
# matmul more per step; gradients bit-identical): 'auto' on CUDA tensors, where activation memory
# bounds the batch; not on the CPU, where it is plentiful and the recompute cost 12-30% of a
# training step (measured side by side at d = 64-512).
RecomputeMode = Literal["auto", "always", "never"]
RECOMPUTE_MODES: tuple[str, ...] = get_args(RecomputeMode)


class RelativeBiasTables(nn.Module):
    """The learned tables of rab^{p,t}: [2N - 1] over relative position, [buckets + 1] over time gaps."""

    def __init__(self, mode: RabMode, max_seq_len: int, num_time_buckets: int, time_bucket_fn: TimeBucketFn) -> None:
        super().__init__()
        self.time_bucket_fn = time_bucket_fn
        self.position_weights = (
            nn.Parameter(torch.empty(2 * max_seq_len - 1).normal_(0.0, 0.02)) if mode in ("pos", "pos_time") else None
        )
        self.time_weights = (
            nn.Parameter(torch.empty(num_time_buckets + 1).normal_(0.0, 0.02)) if mode == "pos_time" else None
        )

    def bias_for(self, sequences: JaggedSequences) -> RelativeAttentionBias | None:
        if self.position_weights is None and self.time_weights is None:
            return None
        with_time = self.time_weights is not None
        return RelativeAttentionBias(
            position_weights=self.position_weights,
            time_weights=self.time_weights,
            query_timestamps=sequences.query_timestamps if with_time else None,
            key_timestamps=sequences.timestamps if with_time else None,
            time_bucket_fn=self.time_bucket_fn,
        )


class HSTULayer(nn.Module):
    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        qk_dim: int,
        v_dim: int,
        dropout: float,
        max_seq_len: int,
        attention: AttentionKind = "pointwise",
        rab: RabMode = "pos_time",
        num_time_buckets: int = 128,
        time_bucket_fn: TimeBucketFn = "log",
        attention_backend: str = "auto",
        recompute_in_backward: RecomputeMode = "auto",
    ) -> None:
        super().__init__()
        if recompute_in_backward not in RECOMPUTE_MODES:
            raise ValueError(f"recompute_in_backward must be one of {', '.join(RECOMPUTE_MODES)}; "
                             f"got {recompute_in_backward!r}")
        self.recompute_in_backward = recompute_in_backward
        self.num_heads, self.qk_dim, self.v_dim = num_heads, qk_dim, v_dim
        self.max_seq_len = max_seq_len
        self.attention = attention
        self.attention_backend = attention_backend
        self.input_norm = nn.LayerNorm(embedding_dim, eps=LAYER_NORM_EPS, elementwise_affine=False)
        self.f1 = nn.Linear(embedding_dim, num_heads * (2 * v_dim + 2 * qk_dim))  # U, V, Q, K fused
        self.output_norm = nn.LayerNorm(num_heads * v_dim, eps=LAYER_NORM_EPS, elementwise_affine=False)
        self.f2 = nn.Linear(num_heads * v_dim, embedding_dim)
        self.dropout = Dropout(dropout)
        self.relative_bias = RelativeBiasTables(rab, max_seq_len, num_time_buckets, time_bucket_fn)
        self.reset_projections()

    def reset_projections(self) -> None:
        """The reference implementation's initialisation of f1 and f2.

        f1 (the fused U, V, Q, K projection) ~ N(0, 0.02) with a zero bias; f2's weight
        Xavier-uniform with PyTorch's default Linear bias, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which
        the reference keeps. With PyTorch's default init for both weights (std ~ 1/sqrt(3 d), 0.08
        at d = 50) HSTU peaked early and below SASRec on ML-100k in ``scaling reproduce table4``
        (test NDCG@10 .082 vs .110, best epoch 17); with these it matched SASRec there.
        """
        nn.init.normal_(self.f1.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.f1.bias)
        nn.init.xavier_uniform_(self.f2.weight)
        bound = 1.0 / math.sqrt(self.f2.in_features)
        nn.init.uniform_(self.f2.bias, -bound, bound)

    def split_streams(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Eq. 1: [T, d] -> U [T, H*dv], V [T, H, dv], Q [T, H, dqk], K [T, H, dqk]."""
        hv, hqk = self.num_heads * self.v_dim, self.num_heads * self.qk_dim
        if self.fused(x):  # keeps only x for backward
            u, v, q, k = stream_projection(x, self.f1.weight, self.f1.bias, self.input_norm.eps, [hv, hv, hqk, hqk])
        else:  # the plain modules: the same operations (and hooks on them run)
            u, v, q, k = torch.split(nn.functional.silu(self.f1(self.input_norm(x))), [hv, hv, hqk, hqk], dim=-1)
        tokens = x.shape[0]
        return (
            u,
            v.reshape(tokens, self.num_heads, self.v_dim),
            q.reshape(tokens, self.num_heads, self.qk_dim),
            k.reshape(tokens, self.num_heads, self.qk_dim),
        )

    def fused(self, x: Tensor) -> bool:
        """Whether Eq. 1 and Eq. 3 run fused on ``x``: only when something is kept for backward (see RecomputeMode)."""
        if not torch.is_grad_enabled() or self.recompute_in_backward == "never":
            return False
        return self.recompute_in_backward == "always" or x.is_cuda

    @property
    def activation(self) -> Literal["silu", "softmax"]:
        return "silu" if self.attention == "pointwise" else "softmax"

    @property
    def scale(self) -> float:
        # Eq. 2 has no 1/sqrt(d) for pointwise attention; the softmax ablation keeps the usual one.
        return 1.0 if self.attention == "pointwise" else 1.0 / math.sqrt(self.qk_dim)

    def attention_layout(self, sequences: JaggedSequences) -> AttentionLayout | None:
        """What this layer's attention needs from the batch alone; any layer of the same configuration can reuse it."""
        return attention_layout(
            sequences.offsets,
            max_seq_len=self.max_seq_len,
            num_heads=self.num_heads,
            bias=self.relative_bias.bias_for(sequences),
            num_targets=sequences.num_targets,
            backend=self.attention_backend,
        )

    def attend(self, q: Tensor, k: Tensor, v: Tensor, sequences: JaggedSequences,
               layout: AttentionLayout | None = None) -> Tensor:
        """Eq. 2 over the jagged batch: [T, H, dqk] x2, [T, H, dv] -> [T, H * dv]."""
        out = jagged_attention(
            q, k, v, sequences.offsets,
            max_seq_len=self.max_seq_len,
            activation=self.activation,
            scale=self.scale,
            bias=self.relative_bias.bias_for(sequences),
            num_targets=sequences.num_targets,
            backend=self.attention_backend,
            layout=layout,
        )
        return out.reshape(out.shape[0], self.num_heads * self.v_dim)

    def transform(self, attended: Tensor, u: Tensor) -> Tensor:
        """Eq. 3: f2(Dropout(LayerNorm(A V) * U)), fused (:mod:`model.hstu_fused`)."""
        if self.fused(attended):
            return gated_output(attended, u, self.f2.weight, self.f2.bias, eps=self.output_norm.eps,
                                dropout=self.dropout.p, training=self.dropout.training)
        return self.f2(self.dropout(self.output_norm(attended) * u))

    def forward(self, x: Tensor, sequences: JaggedSequences, layout: AttentionLayout | None = None) -> Tensor:
        """One layer; ``layout``: the batch's :meth:`attention_layout`, shared by the encoder's layers."""
        u, v, q, k = self.split_streams(x)
        return x + self.transform(self.attend(q, k, v, sequences, layout), u)

    def forward_history(self, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
        """:meth:`forward` over histories alone (plain causal), and their K, V for the candidates to read."""
        u, v, q, k = self.split_streams(x)
        cache = CachedKeyValues(k, v, history.offsets, history.timestamps)
        return x + self.transform(self.attend(q, k, v, history), u), cache

    def forward_candidates(
        self, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend = "auto"
    ) -> Tensor:
        """:meth:`forward` for candidate tokens only, each attending over its cached history and itself.

        Eq. 1 and Eq. 3 on the b candidate rows, O(b d^2); Eq. 2 one row per candidate over the
        n history keys and its own, O(b n d) (Appendix H).
        """
        u, v, q, k = self.split_streams(x)
        attended = cached_target_attention(
            q, k, v, candidates.offsets, cache,
            max_seq_len=self.max_seq_len,
            activation=self.activation,
            scale=self.scale,
            bias=self.relative_bias.bias_for(candidates),
            backend=backend,
        )  # [b, H, dv]
        return x + self.transform(attended.reshape(x.shape[0], self.num_heads * self.v_dim), u)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Forward FLOPs of one layer over a jagged batch of T = sum n_i tokens.

        f1 (Eq. 1): [T, d] x [d, H (2 d_qk + 2 d_v)], the fused U, V, Q, K projection;
        attention (Eq. 2): Q K^T and A V over the P pairs the mask allows (sum n_i (n_i + 1) / 2
        when causal), 2 P H (d_qk + d_v); f2 (Eq. 3): [T, H d_v] x [H d_v, d]. LayerNorms, SiLU,
        rab and the gating by U are elementwise (0 FLOPs by convention, model/flops.py).
        """
        tokens, width = workload.num_tokens, self.f1.in_features
        heads, qk_dim, v_dim = self.num_heads, self.qk_dim, self.v_dim
        return (
            matmul_flops(tokens, width, heads * (2 * qk_dim + 2 * v_dim))
            + attention_flops(workload.attention_pairs, heads, qk_dim, v_dim)
            + matmul_flops(tokens, heads * v_dim, width)
        )


class HSTUEncoder(nn.Module):
    """A residual stack of :class:`HSTULayer`; no final norm (the retrieval head L2-normalises).

    ``final_norm`` is the identity, so every encoder reads the same way (``layers``, then
    ``final_norm``) to code that runs the layers itself, such as M-FALCON.
    """

    def __init__(self, layers: list[HSTULayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.Identity()

    def forward(self, x: Tensor, sequences: JaggedSequences) -> Tensor:
        # Masks and time buckets depend on the batch, not on the layer: build them once for all layers.
        layout = self.layers[0].attention_layout(sequences) if len(self.layers) else None
        for layer in self.layers:
            x = layer(x, sequences, layout)
        return self.final_norm(x)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """The sum of the layers' forward FLOPs (the residual additions are elementwise)."""
        return sum(layer.forward_flops(workload) for layer in self.layers)
