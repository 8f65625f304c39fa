"""Training compute: the workload of each batch, FLOPs per step and cumulative compute in PF-days.

The formulas live with the models (``forward_flops(workload)`` on each nn.Module, conventions
in ``model/flops.py``); this module turns the batches the loop actually runs into workloads
and applies the training convention, forward + backward = 3 x forward. Training compute
counts optimizer steps only: evaluation passes are not training compute (Kaplan et al. 2020,
and the paper's Figure 7 x-axis).
"""

from __future__ import annotations

from torch import Tensor, nn

from model.flops import TRAINING_FLOPS_PER_FORWARD_FLOP, ImpressionWorkload, SequenceWorkload
from scaling.data.batching import EvaluationBatch, TrainingBatch
from scaling.errors import UserError

FLOPS_PER_PF_DAY = 1e15 * 86400  # one petaFLOP/s sustained for a day

Workload = SequenceWorkload | ImpressionWorkload


def pf_days(flops: float) -> float:
    """FLOPs expressed in PF-days (1 PF-day = 1e15 FLOP/s x 86400 s = 8.64e19 FLOPs)."""
    return flops / FLOPS_PER_PF_DAY


def _jagged_shape(offsets: Tensor) -> tuple[int, int, int]:
    """(sequences, sum n_i, sum n_i^2) of a jagged batch, from its [B+1] offsets."""
    lengths = (offsets[1:] - offsets[:-1]).to("cpu")
    return lengths.numel(), int(lengths.sum()), int((lengths * lengths).sum())


def training_workload(batch: TrainingBatch, num_negatives: int) -> SequenceWorkload:
    """One training step of next-item prediction: every input token is scored against 1 + negatives items."""
    sequences, tokens, squares = _jagged_shape(batch.sequences.offsets)
    return SequenceWorkload(
        num_sequences=sequences,
        num_tokens=tokens,
        sum_squared_lengths=squares,
        num_scored=batch.target_ids.numel(),
        items_per_scored=1 + num_negatives,
    )


def evaluation_workload(batch: EvaluationBatch, num_items: int) -> SequenceWorkload:
    """One evaluation batch: the encoder runs on every token, the last token is scored against the catalogue.

    The catalogue matrix has ``num_items + 1`` rows (row 0 is padding, scored and then ignored).
    """
    sequences, tokens, squares = _jagged_shape(batch.sequences.offsets)
    return SequenceWorkload(
        num_sequences=sequences,
        num_tokens=tokens,
        sum_squared_lengths=squares,
        num_scored=sequences,
        items_per_scored=num_items + 1,
    )


def forward_flops(model: nn.Module, workload: Workload) -> float:
    """The model's analytic forward FLOPs for ``workload``; every registry model must define them."""
    formula = getattr(model, "forward_flops", None)
    if formula is None:
        raise UserError(
            f"model {type(model).__name__} has no forward_flops(workload); every model in model/registry.py must "
            "implement it (conventions in model/flops.py) so training compute can be recorded"
        )
    return float(formula(workload))


def training_step_flops(model: nn.Module, workload: Workload) -> float:
    """Forward plus backward FLOPs of one optimizer step (3 x forward: gradients for inputs and weights)."""
    return TRAINING_FLOPS_PER_FORWARD_FLOP * forward_flops(model, workload)
