"""Two-tower retrieval baseline (Covington et al. 2016; paper Appendix E "Retrieval Setting").

User tower: at every position of a jagged sequence, the mean embedding of the items up to and
including that position, concatenated with the embedding of the most recent item, through a
stack of residual feed-forward blocks. Item tower: the item embedding (plus its category's
when categories are known) through the same kind of stack. Outputs are L2-normalised, and the
class exposes :class:`~model.recommender.SequentialRetrievalModel`'s interface (``forward``,
``item_vectors``, ``catalogue_vectors``, ``num_items``), so sampled-softmax training and
full-catalogue evaluation run unchanged: a training step runs the item tower once per distinct
item it compares (scaling/objectives.py), an evaluation pass once over the catalogue.
:func:`model.losses.mixed_negatives_softmax_loss` adds in-batch negatives with the logQ correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.jagged import jagged_to_padded, lengths_from_offsets, padded_to_jagged, token_coordinates
from model.baselines.mlp import MLP
from model.embeddings import ItemEmbedding
from model.flops import SequenceWorkload, matmul_flops
from model.inputs import JaggedSequences


class ResidualBlock(nn.Module):
    """x + W_2 ReLU(W_1 LayerNorm(x)): a pre-norm feed-forward block of width ``dim``."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.feed_forward = MLP([dim, dim, dim], dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.feed_forward(self.norm(x))

    def forward_flops(self, rows: int) -> float:
        return self.feed_forward.forward_flops(rows)


class ResidualTower(nn.Module):
    """[rows, in_dim] -> Linear to hidden -> ``num_blocks`` residual blocks -> Linear to out_dim."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_blocks: int, dropout: float) -> None:
        super().__init__()
        self.input = nn.Linear(in_dim, hidden_dim)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden_dim, dropout) for _ in range(num_blocks)))
        self.output = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.blocks(self.input(x)))

    def forward_flops(self, rows: int) -> float:
        blocks = sum(block.forward_flops(rows) for block in self.blocks)
        return (
            matmul_flops(rows, self.input.in_features, self.input.out_features)
            + blocks
            + matmul_flops(rows, self.output.in_features, self.output.out_features)
        )


class TwoTower(nn.Module):
    def __init__(
        self,
        num_items: int,
        embedding_dim: int,
        hidden_dim: int,
        num_blocks: int,
        dropout: float = 0.0,
        item_categories: Tensor | None = None,
        num_categories: int = 0,
    ) -> None:
        """``item_categories`` [num_items + 1] (0 = unknown) feeds the item tower when given."""
        super().__init__()
        self.item_embedding = ItemEmbedding(num_items, embedding_dim)
        self.embedding_dim = embedding_dim
        if item_categories is not None:
            if item_categories.shape != (num_items + 1,):
                raise ValueError(f"item_categories must have shape [{num_items + 1}]; got {tuple(item_categories.shape)}")
            self.register_buffer("item_categories", item_categories.to(torch.int64))
            self.category_embedding = nn.Embedding(num_categories + 1, embedding_dim, padding_idx=0)
        else:
            self.item_categories = None
            self.category_embedding = None
        item_inputs = 2 if item_categories is not None else 1
        self.user_tower = ResidualTower(2 * embedding_dim, hidden_dim, embedding_dim, num_blocks, dropout)
        self.item_tower = ResidualTower(item_inputs * embedding_dim, hidden_dim, embedding_dim, num_blocks, dropout)

    @property
    def num_items(self) -> int:
        return self.item_embedding.num_items

    def forward(self, sequences: JaggedSequences) -> Tensor:
        """[T, d] L2-normalised user vector after every token (reads that token and earlier ones only)."""
        embedded = self.item_embedding(sequences.item_ids)  # [T, d]
        lengths = lengths_from_offsets(sequences.offsets)
        max_len = int(lengths.max().item()) if lengths.numel() else 0
        # Per-sequence running sums on the padded layout: exact, and nothing crosses sequences.
        running = jagged_to_padded(embedded, sequences.offsets, max_len).cumsum(dim=1)  # [B, L, d]
        _, position = token_coordinates(sequences.offsets)
        prefix_mean = padded_to_jagged(running, sequences.offsets) / (position + 1).unsqueeze(-1)  # [T, d]
        user = self.user_tower(torch.cat([prefix_mean, embedded], dim=-1))
        return F.normalize(user, dim=-1)

    def item_vectors(self, item_ids: Tensor) -> Tensor:
        """[..., d] L2-normalised item-tower outputs of ``item_ids``."""
        inputs = self.item_embedding(item_ids)
        if self.category_embedding is not None:
            inputs = torch.cat([inputs, self.category_embedding(self.item_categories[item_ids])], dim=-1)
        return F.normalize(self.item_tower(inputs), dim=-1)

    def catalogue_vectors(self) -> Tensor:
        """[num_items + 1, d] every item's vector; row 0 (padding) is zero."""
        items = torch.arange(1, self.num_items + 1, device=self.item_embedding.table.weight.device)
        vectors = self.item_vectors(items)
        return torch.cat([vectors.new_zeros(1, self.embedding_dim), vectors], dim=0)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """User tower at every token, item tower once per item vector computed, and the scores.

        A training step runs the item tower once per distinct item among its targets and sampled
        negatives (``workload.num_distinct_items``, counted by scaling/flops.py) and gathers each
        comparison's vectors from those; without that count, once per comparison,
        num_scored * items_per_scored rows. Full-catalogue evaluation computes the catalogue once
        per pass and shares it across batches, so summing its per-batch count over-counts there.
        """
        return (
            self.user_tower.forward_flops(workload.num_tokens)
            + self.item_tower.forward_flops(workload.item_vectors_computed)
            + matmul_flops(workload.num_scored, self.embedding_dim, workload.items_per_scored)
        )
