"""Training compute: the workload of each batch, FLOPs per step and cumulative compute in PF-days.

The formulas live with the models (``forward_flops(workload)`` on each nn.Module, conventions
in ``model/flops.py``); this module turns the batches the loop actually runs into workloads
and applies the training convention, forward + backward = 3 x forward. Training compute
counts optimizer steps only: evaluation passes are not training compute (Kaplan et al. 2020,
and the paper's Figure 7 x-axis).

These are model FLOPs: what the model and its loss compute, independent of how a kernel or an
implementation shortcut executes them (the sampled softmax scoring the whole table when that
is cheaper than gathering negatives, recomputation in a backward pass). The same
configuration therefore always gets the same compute, whatever the hardware or code path.
"""

from __future__ import annotations

from torch import nn

from core.errors import UserError
from core.results_schema import FLOPS_PER_PF_DAY, pf_days  # noqa: F401 (the results table's compute unit)
from kernels.flops import allowed_pairs
from model.flops import TRAINING_FLOPS_PER_FORWARD_FLOP, ImpressionWorkload, SequenceWorkload
from scaling.config import RunConfig
from scaling.data.batching import SequenceBatch
from scaling.data.impressions import ImpressionBatch

Workload = SequenceWorkload | ImpressionWorkload


def batch_workload(batch: SequenceBatch, items_per_scored: int) -> SequenceWorkload:
    """Shape statistics of a jagged batch whose supervised rows are each scored against ``items_per_scored`` items."""
    sequences = batch.sequences
    lengths = (sequences.offsets[1:] - sequences.offsets[:-1]).to("cpu")
    return SequenceWorkload(
        num_sequences=lengths.numel(),
        num_tokens=int(lengths.sum()),
        attention_pairs=allowed_pairs(sequences.offsets, sequences.num_targets, contextual_len=0),
        num_scored=batch.num_targets,
        items_per_scored=items_per_scored,
    )


def impression_workload(batch: ImpressionBatch) -> ImpressionWorkload:
    """A batch of impressions for the DLRM baselines: N impressions, each with K (padded) history items."""
    return ImpressionWorkload(num_impressions=batch.num_targets, history_len=batch.features.history_item_ids.shape[1])


def training_workload(batch: SequenceBatch | ImpressionBatch, config: RunConfig) -> Workload:
    """One training step. Sequence retrieval scores each target against itself and its sampled
    negatives; sequence ranking scores no items (its task heads are counted by the model)."""
    if isinstance(batch, ImpressionBatch):
        return impression_workload(batch)
    items = 0 if config.data.task == "ranking" else 1 + config.train.num_negatives
    return batch_workload(batch, items)


def evaluation_workload(batch: SequenceBatch | ImpressionBatch, task: str, num_items: int) -> Workload:
    """One evaluation batch: retrieval scores each target against the catalogue matrix, whose
    ``num_items + 1`` rows include the padding row 0; ranking scores no items."""
    if isinstance(batch, ImpressionBatch):
        return impression_workload(batch)
    return batch_workload(batch, 0 if task == "ranking" else num_items + 1)


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
