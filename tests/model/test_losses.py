"""Sampled softmax: both ways of computing the logits give the same loss, and it is the textbook formula."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import model.losses
from model.losses import distinct_items, picked_logits, sampled_softmax_loss, sampled_softmax_over_table


def test_dense_and_gathered_sampled_softmax_agree():
    generator = torch.Generator().manual_seed(0)
    table = F.normalize(torch.randn(41, 8, generator=generator), dim=-1)
    query = F.normalize(torch.randn(9, 8, generator=generator), dim=-1)
    positives = torch.randint(1, 41, (9,), generator=generator)
    negatives = torch.randint(1, 41, (9, 8), generator=generator)
    negatives[0, 0] = positives[0]  # an accidental hit is masked in both paths
    dense = sampled_softmax_over_table(query, table, positives, negatives, 0.1)  # 41 rows < 0.7 x 9 x 8: dense path
    gathered = sampled_softmax_loss(query, table[positives], table[negatives], positives, negatives, 0.1)
    torch.testing.assert_close(dense, gathered)
    logits = torch.cat([(query * table[positives]).sum(-1, keepdim=True), torch.einsum("nd,nrd->nr", query, table[negatives])], 1) / 0.1
    logits[:, 1:][negatives == positives.unsqueeze(1)] = float("-inf")  # every accidental hit, [0, 0] among them
    torch.testing.assert_close(gathered, F.cross_entropy(logits, torch.zeros(9, dtype=torch.int64)))
    small_dim_table = table[:, :2]  # 41 rows > 0.7 x 9 x 2: gathered path, same answer as the formula
    q2 = F.normalize(query[:, :2], dim=-1)
    torch.testing.assert_close(
        sampled_softmax_over_table(q2, small_dim_table, positives, negatives, 0.1),
        sampled_softmax_loss(q2, small_dim_table[positives], small_dim_table[negatives], positives, negatives, 0.1),
    )


def test_picked_logits_in_blocks_are_the_whole_matrix_picked(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(23, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    table = torch.randn(11, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 11, (23, 4), generator=generator)
    ids[3] = 7  # a row picking one item several times: its gradient adds up
    weights = torch.randn(23, 4, generator=generator, dtype=torch.float64)
    whole = (query @ table.T).gather(1, ids)  # 11 rows < 0.7 x 4 x 5: the dense path
    whole_grads = torch.autograd.grad((whole * weights).sum(), (query, table))
    monkeypatch.setattr(model.losses, "PICK_BLOCK_ELEMENTS", 11 * 5)  # blocks of 5 rows, the last one of 3
    blocked = picked_logits(query, table, ids)
    torch.testing.assert_close(blocked, whole)
    for got, want in zip(torch.autograd.grad((blocked * weights).sum(), (query, table)), whole_grads):
        torch.testing.assert_close(got, want)
    monkeypatch.setattr(model.losses, "GATHER_BLOCK_ELEMENTS", 4 * 2 * 6)
    narrow = table[:, :2]  # 11 rows > 0.7 x 4 x 2: the gathered path, in blocks of 6 queries
    whole = (query[:, :2] @ narrow.T).gather(1, ids)
    blocked = picked_logits(query[:, :2], narrow, ids)
    torch.testing.assert_close(blocked, whole)
    for got, want in zip(torch.autograd.grad((blocked * weights).sum(), (query, table)),
                         torch.autograd.grad((whole * weights).sum(), (query, table))):
        torch.testing.assert_close(got, want)


def test_distinct_items_is_torch_unique_with_inverse_rows():
    generator = torch.Generator().manual_seed(0)
    many = torch.randint(0, 30, (50, 7), generator=generator)  # more ids than items: the presence-mask path
    few = torch.tensor([[9, 3], [3, 27]])  # fewer ids than items: torch.unique itself
    for ids in (many, few):
        distinct, rows = distinct_items(ids, 30)
        want_distinct, want_rows = torch.unique(ids, sorted=True, return_inverse=True)
        assert torch.equal(distinct, want_distinct) and torch.equal(rows, want_rows)
        assert torch.equal(distinct[rows], ids)
