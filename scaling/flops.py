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

import torch
from torch import Tensor, nn

from core.errors import UserError
from core.results_schema import FLOPS_PER_PF_DAY, pf_days  # noqa: F401 (the results table's compute unit)
from kernels.flops import allowed_pairs
from model.flops import TRAINING_FLOPS_PER_FORWARD_FLOP, ImpressionWorkload, SequenceWorkload
from scaling.config import RunConfig
from scaling.data.batching import SequenceBatch
from scaling.data.impressions import ImpressionBatch

Workload = SequenceWorkload | ImpressionWorkload


def batch_workload(batch: SequenceBatch, items_per_scored: int, num_distinct_items: int | None = None) -> SequenceWorkload:
    """Shape statistics of a jagged batch whose supervised rows are each scored against ``items_per_scored`` items."""
    sequences = batch.sequences
    lengths = (sequences.offsets[1:] - sequences.offsets[:-1]).to("cpu")
    return SequenceWorkload(
        num_sequences=lengths.numel(),
        num_tokens=int(lengths.sum()),
        attention_pairs=allowed_pairs(sequences.offsets, sequences.num_targets, contextual_len=0),
        num_scored=batch.num_targets,
        items_per_scored=items_per_scored,
        num_distinct_items=num_distinct_items,
    )


def impression_workload(batch: ImpressionBatch) -> ImpressionWorkload:
    """A batch of impressions for the DLRM baselines: N impressions, each with K (padded) history items."""
    return ImpressionWorkload(num_impressions=batch.num_targets, history_len=batch.features.history_item_ids.shape[1])


def training_workload(batch: SequenceBatch | ImpressionBatch, config: RunConfig, negatives: Tensor | None = None) -> Workload:
    """One training step. Sequence retrieval scores each target against itself and its sampled
    ``negatives`` [S, R] (when given, the distinct items among both are counted: an item network
    computes each once); sequence ranking scores no items (its task heads are counted by the model)."""
    if isinstance(batch, ImpressionBatch):
        return impression_workload(batch)
    if config.data.task == "ranking":
        return batch_workload(batch, 0)
    distinct = None
    if negatives is not None:
        compared = torch.cat([batch.target_item_ids.to(negatives.device).unsqueeze(1), negatives], dim=1)
        distinct = int(torch.bincount(compared.flatten()).count_nonzero())
    return batch_workload(batch, 1 + config.train.num_negatives, distinct)


def evaluation_workload(batch: SequenceBatch | ImpressionBatch, task: str, num_items: int) -> Workload:
    """One evaluation batch: retrieval scores each target against the catalogue matrix, whose
    ``num_items + 1`` rows include the padding row 0 (an item network computes its ``num_items``
    rows once per pass); ranking scores no items."""
    if isinstance(batch, ImpressionBatch):
        return impression_workload(batch)
    if task == "ranking":
        return batch_workload(batch, 0)
    return batch_workload(batch, num_items + 1, num_items)


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
