"""Attention operators for jagged (values + offsets) batches.

The public entry point is :func:`kernels.attention.jagged_attention`; everything else here is
an implementation detail of one backend (the padded PyTorch reference, the Triton kernels).
"""

from kernels.attention import AttentionBackend, RelativeAttentionBias, jagged_attention

__all__ = ["AttentionBackend", "RelativeAttentionBias", "jagged_attention"]
