"""Attention operators for jagged (values + offsets) batches.

The public entry points are :func:`kernels.attention.jagged_attention` (with
:func:`kernels.attention.attention_layout`, what it needs from a batch, built once for every
layer) and, for M-FALCON's KV cache, :func:`kernels.attention.cached_target_attention`;
:mod:`kernels.flops` counts the pairs their masks allow (the attention FLOPs of every FLOPs
formula). Everything else here is an implementation detail of one backend (the padded PyTorch
reference, the CPU backend, the Triton kernels).
"""

from kernels.attention import AttentionBackend, attention_layout, cached_target_attention, jagged_attention
from kernels.bias import RelativeAttentionBias
from kernels.cache import CachedKeyValues
from kernels.layout import AttentionLayout

__all__ = ["AttentionBackend", "AttentionLayout", "CachedKeyValues", "RelativeAttentionBias", "attention_layout",
           "cached_target_attention", "jagged_attention"]
