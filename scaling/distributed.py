"""Data-parallel training across workers: each step's global batch split among them, gradients all-reduced.

Every worker builds the same run from the same config and seed, draws the same global batch
(same shuffle, Stochastic Length and negatives: every random stream is seeded alike), counts
its FLOPs (so FLOPs and PF-days are the global batch's, every worker's work) and then trains
on its own share only, through ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs).

Exactness: the objectives' losses are means over the batch's S targets, and DDP averages the
workers' gradients. Worker r's loss is scaled by ``W * S_r / S`` so that the average is the
gradient of the global batch's mean loss, as one worker computes it; what differs is only the
order of floating-point sums. A batch with fewer sequences than workers, or a split that would
leave a worker without targets, is trained whole by every worker (weight 1: the same gradient).

Evaluation runs once, on rank 0, and its metrics are broadcast, so every worker takes the same
best-checkpoint and early-stopping decisions and the history is recorded identically everywhere.
Wall-time budgets are agreed (any worker out of time stops all), so no worker waits alone in a
collective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from scaling.data.batching import SequenceBatch
from scaling.data.impressions import ImpressionBatch

Result = TypeVar("Result")


class ReplicaForward:
    """The model as an objective sees it: calls go through DDP (which syncs gradients), attributes
    (``num_items``, ``catalogue_vectors``...) to the module itself."""

    def __init__(self, replica: DistributedDataParallel) -> None:
        self.replica = replica

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.replica(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.replica.module, name)


@dataclass
class DataParallel:
    """This worker's place in an initialised process group and its DDP replica of the model."""

    rank: int
    world_size: int
    device: torch.device
    replica: ReplicaForward | None = field(default=None, repr=False)

    @classmethod
    def from_process_group(cls, device: torch.device) -> DataParallel:
        """The worker's rank and world size from ``torch.distributed`` (set up by Ray Train or a test)."""
        if not dist.is_initialized():
            raise RuntimeError("data-parallel training needs an initialised torch.distributed process group")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def attach(self, model: nn.Module) -> None:
        """Wrap ``model`` in DDP (rank 0's parameters are broadcast: every replica starts equal).

        Every parameter must get a gradient each step (``find_unused_parameters`` stays off: the
        objectives use some parameters outside ``forward``, e.g. the item table of a sampled softmax).
        """
        device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
        self.replica = ReplicaForward(DistributedDataParallel(model, device_ids=device_ids))

    def shard(self, batch: SequenceBatch | ImpressionBatch, negatives: Tensor | None
              ) -> tuple[SequenceBatch | ImpressionBatch, Tensor | None, float]:
        """This worker's part of the global ``batch`` (and of its [S, R] ``negatives``) and its loss weight."""
        targets_per_row = _targets_per_row(batch)
        bounds = _balanced_bounds(targets_per_row, self.world_size)
        if bounds is None:
            return batch, negatives, 1.0
        first, last = bounds[self.rank], bounds[self.rank + 1]
        part, targets = _rows(batch, first, last, targets_per_row)
        share = None if negatives is None else negatives[targets]
        return part, share, self.world_size * (targets.stop - targets.start) / int(targets_per_row.sum())

    def global_loss(self, weighted_loss: Tensor) -> float:
        """The global batch's mean loss from each worker's weighted share (one all-reduce)."""
        total = weighted_loss.detach().float().reshape(1).clone()
        dist.all_reduce(total)
        return total.item() / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every worker when ``flag`` is on any (budgets read from each worker's own clock)."""
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def on_first_worker(self, compute: Callable[[], Result]) -> Result:
        """``compute()`` on rank 0 alone, its result sent to every worker (evaluation: scored once)."""
        holder: list[Any] = [compute() if self.rank == 0 else None]
        dist.broadcast_object_list(holder, src=0, device=self._collective_device())
        return holder[0]

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _targets_per_row(batch: SequenceBatch | ImpressionBatch) -> np.ndarray:
    """[B] targets each sequence (or impression) of the batch supervises."""
    if isinstance(batch, ImpressionBatch):
        return np.ones(batch.num_targets, dtype=np.int64)
    offsets = batch.sequences.offsets.cpu()
    sequence_of_target = torch.searchsorted(offsets, batch.supervised_rows.cpu(), right=True) - 1
    return torch.bincount(sequence_of_target, minlength=offsets.numel() - 1).numpy()


def _balanced_bounds(targets_per_row: np.ndarray, world_size: int) -> list[int] | None:
    """Row bounds [W + 1] cutting the batch into contiguous parts with about S / W targets each;
    None when some part would have no targets (the batch is then trained whole by every worker)."""
    cumulative = np.concatenate([[0], np.cumsum(targets_per_row)])
    total = int(cumulative[-1])
    cuts = [int(np.searchsorted(cumulative, total * r / world_size, side="left")) for r in range(1, world_size)]
    bounds = [0, *cuts, len(targets_per_row)]
    targets = [int(cumulative[b] - cumulative[a]) for a, b in zip(bounds, bounds[1:])]
    return bounds if min(targets) > 0 else None


def _rows(batch: SequenceBatch | ImpressionBatch, first: int, last: int, targets_per_row: np.ndarray
          ) -> tuple[SequenceBatch | ImpressionBatch, slice]:
    """Sequences (or impressions) ``first:last`` of the batch, and the slice of its targets they hold.

    A sequence batch's targets are grouped by sequence, in order (``SequenceBatcher.batch``)."""
    targets = slice(int(targets_per_row[:first].sum()), int(targets_per_row[:last].sum()))
    if isinstance(batch, ImpressionBatch):
        return batch.rows(slice(first, last)), targets
    sequences = batch.sequences
    token_start, token_end = int(sequences.offsets[first]), int(sequences.offsets[last])
    candidates = None if sequences.num_targets is None else sequences.num_targets[first:last]
    part_sequences = sequences.with_tokens(slice(token_start, token_end),
                                           sequences.offsets[first:last + 1] - token_start, candidates)
    return batch.with_targets(part_sequences, batch.supervised_rows[targets] - token_start, targets), targets

