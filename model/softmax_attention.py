"""The causal softmax attention the Transformer layers (SASRec, Transformer++) share, over jagged batches.

A layer mixes in :class:`CausalSoftmaxAttention` and sets ``num_heads``, ``qk_dim``,
``max_seq_len`` and ``attention_backend``; the two layers differ in their projections (RoPE or
not) and blocks around the attention, never in the attention itself.
"""

from __future__ import annotations

import math

from torch import Tensor

from kernels import AttentionLayout, CachedKeyValues, attention_layout, cached_target_attention, jagged_attention
from kernels.attention import CachedAttentionBackend
from model.inputs import JaggedSequences


class CausalSoftmaxAttention:
    num_heads: int
    qk_dim: int
    max_seq_len: int
    attention_backend: str

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.qk_dim)

    def attention_layout(self, sequences: JaggedSequences) -> AttentionLayout | None:
        """What this layer's attention needs from the batch alone (its masks); every layer of the stack reuses it."""
        return attention_layout(sequences.offsets, max_seq_len=self.max_seq_len, num_heads=self.num_heads,
                                num_targets=sequences.num_targets, backend=self.attention_backend)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, sequences: JaggedSequences,
               layout: AttentionLayout | None = None) -> Tensor:
        """Causal softmax attention over the jagged batch: [T, H, dqk] x2, [T, H, dv] -> [T, H, dv]."""
        return jagged_attention(
            q, k, v, sequences.offsets,
            max_seq_len=self.max_seq_len,
            activation="softmax",
            scale=self.scale,
            num_targets=sequences.num_targets,
            backend=self.attention_backend,
            layout=layout,
        )

    def attend_candidates(self, q: Tensor, k: Tensor, v: Tensor, candidates: JaggedSequences, cache: CachedKeyValues,
                          backend: CachedAttentionBackend) -> Tensor:
        """Candidate rows' softmax attention over their cached history and themselves (M-FALCON)."""
        return cached_target_attention(q, k, v, candidates.offsets, cache, max_seq_len=self.max_seq_len,
                                       activation="softmax", scale=self.scale, backend=backend)
