"""Sampled softmax: both ways of computing the logits give the same loss, and it is the textbook formula."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.losses import distinct_items, sampled_softmax_loss, sampled_softmax_over_table


def test_dense_and_gathered_sampled_softmax_agree():
    generator = torch.Generator().manual_seed(0)
    table = F.normalize(torch.randn(41, 6, generator=generator), dim=-1)
    query = F.normalize(torch.randn(9, 6, generator=generator), dim=-1)
    positives = torch.randint(1, 41, (9,), generator=generator)
    negatives = torch.randint(1, 41, (9, 8), generator=generator)
    negatives[0, 0] = positives[0]  # an accidental hit is masked in both paths
    dense = sampled_softmax_over_table(query, table, positives, negatives, 0.1)  # 41 rows <= 8 x 6: dense path
    gathered = sampled_softmax_loss(query, table[positives], table[negatives], positives, negatives, 0.1)
    torch.testing.assert_close(dense, gathered)
    logits = torch.cat([(query * table[positives]).sum(-1, keepdim=True), torch.einsum("nd,nrd->nr", query, table[negatives])], 1) / 0.1
    logits[0, 1] = float("-inf")
    torch.testing.assert_close(gathered, F.cross_entropy(logits, torch.zeros(9, dtype=torch.int64)))
    small_dim_table = table[:, :2]  # 41 rows > 8 x 2: gathered path, same answer as the formula
    q2 = F.normalize(query[:, :2], dim=-1)
    torch.testing.assert_close(
        sampled_softmax_over_table(q2, small_dim_table, positives, negatives, 0.1),
        sampled_softmax_loss(q2, small_dim_table[positives], small_dim_table[negatives], positives, negatives, 0.1),
    )


def test_distinct_items_is_torch_unique_with_inverse_rows():
    generator = torch.Generator().manual_seed(0)
    many = torch.randint(0, 30, (50, 7), generator=generator)  # more ids than items: the presence-mask path
    few = torch.tensor([[9, 3], [3, 27]])  # fewer ids than items: torch.unique itself
    for ids in (many, few):
        distinct, rows = distinct_items(ids, 30)
        want_distinct, want_rows = torch.unique(ids, sorted=True, return_inverse=True)
        assert torch.equal(distinct, want_distinct) and torch.equal(rows, want_rows)
        assert torch.equal(distinct[rows], ids)
