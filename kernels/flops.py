"""Attention FLOPs: the (query, key) pairs the mask of ``kernels/attention.py`` allows, and their cost.

The one place pairs are counted. The models' analytic FLOPs (``forward_flops`` in ``model/``),
M-FALCON's scoring FLOPs (``model/mfalcon.py``) and the FLOP formula registered for the
reference custom op (``kernels/reference_op.py``) all read it, so the analytic count and
``FlopCounterMode`` agree on attention exactly.

Causal attention includes the diagonal (every token attends to itself), so a sequence of n
tokens has n (n + 1) / 2 pairs, not n^2 / 2. Each pair costs a multiply-add (2 FLOPs) per query
channel for S = Q K^T and per value channel for O = A V; elementwise work (SiLU or softmax, the
bias, the mask) counts 0, as everywhere in this project (``model/flops.py``).
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor

Count = TypeVar("Count", int, Tensor)


def causal_pairs(length: Count) -> Count:
    """n (n + 1) / 2: query i sees keys 0..i, the diagonal included (an int, or elementwise over a tensor)."""
    return length * (length + 1) // 2


def target_pairs(history_len: Count, num_targets: Count) -> Count:
    """t (h + 1): each of t targets sees the h history tokens and itself, never another target."""
    return num_targets * (history_len + 1)


def allowed_pairs(offsets: Tensor, num_targets: Tensor | None, contextual_len: int) -> int:
    """Number of (query, key) pairs the attention mask allows, summed over the jagged batch.

    Per sequence of n tokens with t targets (history ends at h = n - t) and c prefix tokens:
    history query i sees keys 0..i (causal over h tokens), each prefix query also sees the
    prefix keys after it (c (c - 1) / 2 more), and each target sees the h history keys and
    itself: h (h + 1) / 2 + c (c - 1) / 2 + t (h + 1).
    """
    lengths = (offsets[1:] - offsets[:-1]).to(torch.int64).cpu()
    targets = num_targets.to(torch.int64).cpu() if num_targets is not None else torch.zeros_like(lengths)
    history = lengths - targets
    prefix = torch.minimum(torch.full_like(history, contextual_len), history)
    # Prefix query i also sees the c - 1 - i prefix keys after it: c (c - 1) / 2 = causal_pairs(c - 1).
    pairs = causal_pairs(history) + causal_pairs(prefix - 1) + target_pairs(history, targets)
    return int(pairs.sum())


def attention_flops(pairs: int, num_heads: int, qk_dim: int, v_dim: int) -> int:
    """2 P H (d_qk + d_v): S = Q K^T and O = A V over ``pairs`` (query, key) pairs, every head."""
    return 2 * pairs * num_heads * (qk_dim + v_dim)
