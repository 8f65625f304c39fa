"""Attention operators for jagged (values + offsets) batches.

The public entry points are :func:`kernels.attention.jagged_attention` and, for M-FALCON's KV
cache, :func:`kernels.attention.cached_target_attention`; :mod:`kernels.flops` counts the pairs
their masks allow (the attention FLOPs of every FLOPs formula). Everything else here is an
implementation detail of one backend (the padded PyTorch reference, the Triton kernels).
"""

from kernels.attention import AttentionBackend, cached_target_attention, jagged_attention
from kernels.bias import RelativeAttentionBias
from kernels.cache import CachedKeyValues

__all__ = ["AttentionBackend", "CachedKeyValues", "RelativeAttentionBias", "cached_target_attention", "jagged_attention"]
