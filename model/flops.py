"""FLOPs-accounting vocabulary shared by every model: workload shapes and counting conventions.

Each model module implements ``forward_flops(workload) -> float`` (a method on its nn.Module)
with the derivation in its docstring. Conventions, fixed here so all models are comparable:

* a multiply-add is 2 FLOPs; a [m, k] x [k, n] matmul costs 2 m k n;
* embedding lookups, elementwise ops, norms and activations count 0 (they are memory-bound
  and negligible next to matmuls; FlopCounterMode agrees, it counts only matmul-like ops);
* causal attention counts the n^2 terms halved: Q K^T and A V each cost 2 * (n^2 / 2) * d per head
  (the masked half is skipped by a fused kernel, see kernels/);
* training FLOPs = forward + backward, with backward = 2 x forward (gradients for inputs and
  weights of every matmul), i.e. 3 x forward.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAINING_FLOPS_PER_FORWARD_FLOP = 3.0


@dataclass(frozen=True)
class SequenceWorkload:
    """Shape statistics of one batch of jagged sequences (GR models)."""

    num_sequences: int
    num_tokens: int  # sum of n_i
    sum_squared_lengths: int  # sum of n_i^2 (attention cost)
    num_scored: int  # tokens whose output is scored (loss targets, or evaluation queries)
    items_per_scored: int  # item embeddings each scored token is compared with (1 + negatives, or the catalogue)


@dataclass(frozen=True)
class ImpressionWorkload:
    """Shape statistics of one batch of impressions (DLRM baselines)."""

    num_impressions: int
    history_len: int  # K history items per impression (padded length used by the model)


def matmul_flops(rows: int, inner: int, cols: int) -> float:
    """FLOPs of a [rows, inner] x [inner, cols] matrix product."""
    return 2.0 * rows * inner * cols


def causal_attention_flops(sum_squared_lengths: int, num_heads: int, qk_dim: int, v_dim: int) -> float:
    """Q K^T plus A V over the causal half of every sequence's n x n score matrix."""
    return 2.0 * (sum_squared_lengths / 2.0) * num_heads * (qk_dim + v_dim)
