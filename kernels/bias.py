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
    """Map time gaps (any int or float tensor, seconds) to int64 bucket ids in [0, num_buckets]."""
    return _bucketize_magnitudes_(gaps.to(torch.float32, copy=True), num_buckets, fn).to(torch.int64)


def pairwise_time_buckets(query_times: Tensor, key_times: Tensor, num_buckets: int, fn: TimeBucketFn) -> Tensor:
    """[..., Lq, Lk] int32 ``bucketize_time_gaps(query_times[..., i] - key_times[..., j])``, exactly.

    query_times [..., Lq] and key_times [..., Lk] are integer seconds, int64 or (cheaper: half the
    memory traffic) int32 when every gap fits; the gaps are bucketised in place in one float32 buffer.
    """
    gaps = query_times.unsqueeze(-1) - key_times.unsqueeze(-2)  # [..., Lq, Lk], exact integers
    return _bucketize_magnitudes_(gaps.to(torch.float32), num_buckets, fn).to(torch.int32)


def _bucketize_magnitudes_(gaps: Tensor, num_buckets: int, fn: TimeBucketFn) -> Tensor:
    """In place on float32 gaps: ln(max(|gap|, 1)) / LOG_BUCKET_DIVISOR or sqrt(...), clamped to [0, num_buckets].

    Still float: the caller truncates (floors) to an integer type.
    """
    magnitude = gaps.abs_().clamp_(min=1)
    if fn == "log":
        buckets = magnitude.log_().div_(LOG_BUCKET_DIVISOR)
    elif fn == "sqrt":
        buckets = magnitude.sqrt_()
    else:
        raise ValueError(f"time_bucket_fn must be 'log' or 'sqrt'; got {fn!r}")
    return buckets.clamp_(min=0, max=num_buckets)
