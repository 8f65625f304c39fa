"""Retrieval losses: sampled softmax over uniform negatives, alone or mixed with in-batch negatives."""

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


def mixed_negatives_softmax_loss(
    query: Tensor,
    positive: Tensor,
    positive_ids: Tensor,
    temperature: float,
    negatives: Tensor | None = None,
    negative_ids: Tensor | None = None,
    item_frequencies: Tensor | None = None,
) -> Tensor:
    """Mean over N targets of -log softmax of the positive among in-batch and sampled negatives.

    Mixed negative sampling (Yang et al., WWW 2020): row i's candidates are its positive, the
    other rows' positives (in-batch negatives: [N, N] logits, so pass at most a few thousand
    rows) and its own R uniformly sampled ``negatives`` [N, R, d] (optional). Candidates with
    the positive's id are masked: they are not negatives.

    In-batch negatives are drawn in proportion to popularity, so popular items are
    over-penalised. With ``item_frequencies`` [num_items + 1] (p_j: the share of training
    targets that are item j), every candidate's logit, the positive's included, is corrected by
    the log of its expected number of draws under the mixed proposal, log(N p_j + R / num_items)
    (the logQ correction of Yi et al., RecSys 2019, Section 3.2, extended to the mixture).
    """
    num_rows = query.shape[0]
    logits = query @ positive.T / temperature  # [N, N]; diagonal = each row's positive
    candidate_ids = positive_ids.unsqueeze(0).expand(num_rows, -1)  # [N, N]
    if negatives is not None:
        if negative_ids is None:
            raise ValueError("negative_ids are needed with negatives (to mask accidental hits and correct logQ)")
        sampled = torch.einsum("nd,nrd->nr", query, negatives) / temperature  # [N, R]
        logits = torch.cat([logits, sampled], dim=1)
        candidate_ids = torch.cat([candidate_ids, negative_ids], dim=1)
    if item_frequencies is not None:
        num_sampled = 0 if negatives is None else negatives.shape[1]
        expected_draws = num_rows * item_frequencies + num_sampled / (item_frequencies.numel() - 1)
        logits = logits - torch.log(expected_draws.clamp(min=1e-12))[candidate_ids]
    rows = torch.arange(num_rows, device=query.device)
    is_positive = torch.zeros_like(logits, dtype=torch.bool)
    is_positive[rows, rows] = True
    accidental_hit = (candidate_ids == positive_ids.unsqueeze(1)) & ~is_positive
    logits = logits.masked_fill(accidental_hit, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - logits[rows, rows]).mean()
