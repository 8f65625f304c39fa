"""Full-catalogue evaluation of a retrieval model on the validation or test targets."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scaling.data.batching import EvalSplit, EvaluationBatch, LeaveOneOutSplit
from scaling.metrics import retrieval_metrics, target_ranks
from kernels.jagged import last_token_index


def history_mask(batch: EvaluationBatch, num_items: int) -> Tensor:
    """[B, num_items + 1] True where the item is in the user's history before the target."""
    mask = torch.zeros(batch.target_ids.numel(), num_items + 1, dtype=torch.bool, device=batch.target_ids.device)
    lengths = batch.history_offsets[1:] - batch.history_offsets[:-1]
    rows = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)
    mask[rows, batch.history_ids] = True
    return mask


@torch.no_grad()
def evaluate_retrieval(
    model: nn.Module,
    split: LeaveOneOutSplit,
    which: EvalSplit,
    batch_size: int,
    device: torch.device,
    exclude_history: bool = True,
) -> dict[str, float]:
    """Rank every user's held-out item against the whole catalogue; return mean metrics."""
    was_training = model.training
    model.eval()
    catalogue = model.catalogue_vectors()  # [I + 1, d]
    ranks = []
    for batch in split.evaluation_batches(which, batch_size):
        batch = batch.to(device)
        queries = model(batch.sequences)[last_token_index(batch.sequences.offsets)]  # [B, d]
        scores = queries @ catalogue.T  # [B, I + 1]
        excluded = history_mask(batch, model.num_items) if exclude_history else None
        ranks.append(target_ranks(scores, batch.target_ids, excluded).cpu())
    model.train(was_training)
    return retrieval_metrics(torch.cat(ranks))
