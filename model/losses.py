"""Losses: sampled softmax over uniformly drawn negatives for retrieval."""

from __future__ import annotations

import torch
from torch import Tensor


def sampled_softmax_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor,
    positive_ids: Tensor,
    negative_ids: Tensor,
    temperature: float,
) -> Tensor:
    """Mean over N targets of -log softmax of the positive among [positive, R negatives].

    query, positive: [N, d] (L2-normalised); negatives: [N, R, d]; positive_ids: [N];
    negative_ids: [N, R]. A negative that happens to be the positive item is masked out
    (it is not a negative), as in the reference implementation.
    """
    positive_logits = (query * positive).sum(-1, keepdim=True) / temperature  # [N, 1]
    negative_logits = torch.einsum("nd,nrd->nr", query, negatives) / temperature  # [N, R]
    accidental_hit = negative_ids == positive_ids.unsqueeze(1)
    negative_logits = negative_logits.masked_fill(accidental_hit, float("-inf"))
    logits = torch.cat([positive_logits, negative_logits], dim=1)  # [N, 1 + R]
    return (torch.logsumexp(logits, dim=1) - positive_logits.squeeze(1)).mean()


def sample_uniform_negatives(
    num_targets: int, num_negatives: int, num_items: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """[N, R] item ids drawn uniformly from 1..num_items (0 is padding), independently per target."""
    return torch.randint(1, num_items + 1, (num_targets, num_negatives), generator=generator, device=device)
