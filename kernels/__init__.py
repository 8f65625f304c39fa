"""Attention operators for jagged (values + offsets) batches.

The public entry points are :func:`kernels.attention.jagged_attention` and, for M-FALCON's KV
cache, :func:`kernels.attention.cached_target_attention`; everything else here is
an implementation detail of one backend (the padded PyTorch reference, the Triton kernels).
"""

from kernels.attention import (
    AttentionBackend,
    CachedKeyValues,
    RelativeAttentionBias,
    cached_target_attention,
    jagged_attention,
)

__all__ = ["AttentionBackend", "CachedKeyValues", "RelativeAttentionBias", "cached_target_attention", "jagged_attention"]
