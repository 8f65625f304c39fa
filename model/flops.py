"""FLOPs-accounting vocabulary shared by every model: workload shapes and counting conventions.

Each model module implements ``forward_flops(workload) -> float`` (a method on its nn.Module)
with the derivation in its docstring. Conventions, fixed here so all models are comparable:

* a multiply-add is 2 FLOPs; a [m, k] x [k, n] matmul costs 2 m k n;
* embedding lookups, elementwise ops, norms and activations count 0 (they are memory-bound
  and negligible next to matmuls; FlopCounterMode agrees, it counts only matmul-like ops);
* attention counts the (query, key) pairs its mask allows, n (n + 1) / 2 per causal sequence
  (every token sees itself), and Q K^T and A V cost 2 d per pair and head (``kernels/flops.py``,
  the same count the reference op reports to FlopCounterMode; a fused kernel skips the rest);
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
    attention_pairs: int  # (query, key) pairs the attention mask allows: sum n_i (n_i + 1) / 2 when causal
    num_scored: int  # tokens whose output is scored (loss targets, or evaluation queries)
    items_per_scored: int  # item embeddings each scored token is compared with (1 + negatives, or the catalogue)
    # Distinct items whose vectors the batch computes (the targets and negatives of a training step,
    # the catalogue in evaluation): an item network (two-tower's item tower) runs once per distinct
    # item. None: not counted, one item vector per comparison (num_scored x items_per_scored).
    num_distinct_items: int | None = None

    @property
    def item_vectors_computed(self) -> int:
        """Item vectors an item network computes for this batch: once per distinct item when counted."""
        if self.num_distinct_items is not None:
            return self.num_distinct_items
        return self.num_scored * self.items_per_scored


@dataclass(frozen=True)
class ImpressionWorkload:
    """Shape statistics of one batch of impressions (DLRM baselines)."""

    num_impressions: int
    history_len: int  # K history items per impression (padded length used by the model)


def matmul_flops(rows: int, inner: int, cols: int) -> float:
    """FLOPs of a [rows, inner] x [inner, cols] matrix product."""
    return 2.0 * rows * inner * cols
