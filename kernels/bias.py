"""The relative attention bias rab^{p,t} (paper Eq. 2): its inputs and the time-gap bucketisation.

Shared by the HSTU model, the PyTorch reference and the Triton kernels so that every path
reads the same tables and buckets a gap identically. Gaps are computed in float32 after
clamping to >= 1 second, the same arithmetic the kernels do in registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

TimeBucketFn = Literal["log", "sqrt"]

# The reference implementation's log base: floor(ln(max(|dt|, 1)) / 0.301), i.e. about
# 2.3 buckets per doubling of the gap (generative-recommenders, relative_bias.py).
LOG_BUCKET_DIVISOR = 0.301


@dataclass(frozen=True)
class RelativeAttentionBias:
    """Inputs of rab^{p,t}; either part may be absent (``None``)."""

    position_weights: Tensor | None  # [2 * max_seq_len - 1]
    time_weights: Tensor | None  # [num_time_buckets + 1]
    query_timestamps: Tensor | None = None  # [T] int64 seconds; required with time_weights
    key_timestamps: Tensor | None = None  # [T] int64 seconds; required with time_weights
    time_bucket_fn: TimeBucketFn = "log"


def bucketize_time_gaps(gaps: Tensor, num_buckets: int, fn: TimeBucketFn) -> Tensor:
    """Map time gaps (any int or float tensor, seconds) to bucket ids in [0, num_buckets]."""
    magnitude = gaps.abs().clamp(min=1).to(torch.float32)
    if fn == "log":
        buckets = torch.log(magnitude) / LOG_BUCKET_DIVISOR
    elif fn == "sqrt":
        buckets = torch.sqrt(magnitude)
    else:
        raise ValueError(f"time_bucket_fn must be 'log' or 'sqrt'; got {fn!r}")
    return buckets.to(torch.int64).clamp(min=0, max=num_buckets)
