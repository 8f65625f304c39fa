"""Item embedding table and the input layer that turns token ids into model inputs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kernels.jagged import token_positions
from model.dropout import Dropout


class ItemEmbedding(nn.Module):
    """[num_items + 1, d] table; row 0 is padding. Shared by the input and the retrieval output."""

    def __init__(self, num_items: int, embedding_dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(num_items + 1, embedding_dim, padding_idx=0)
        # Truncated normal with std 0.02, as in the reference implementation's item tables.
        nn.init.trunc_normal_(self.table.weight, std=0.02, a=-0.04, b=0.04)
        with torch.no_grad():
            self.table.weight[0].zero_()

    @property
    def num_items(self) -> int:
        return self.table.num_embeddings - 1

    def forward(self, item_ids: Tensor) -> Tensor:
        return self.table(item_ids)


class InputLayer(nn.Module):
    """x_i = sqrt(d) * e(token_i) + p(position_i), then dropout (the SASRec/HSTU input recipe).

    Encoders that encode positions themselves (rotary embeddings) switch the absolute table off.
    """

    def __init__(self, embedding_dim: int, max_seq_len: int, dropout: float, absolute_positions: bool = True) -> None:
        super().__init__()
        self.scale = math.sqrt(embedding_dim)
        self.positions = nn.Embedding(max_seq_len, embedding_dim) if absolute_positions else None
        if self.positions is not None:
            # Xavier-normal, as the reference's sequential encoders initialise every parameter outside
            # the item table and the HSTU layers: std sqrt(2 / (max_seq_len + d)), 0.089 at 200 x 50.
            nn.init.xavier_normal_(self.positions.weight)
        self.dropout = Dropout(dropout)

    def forward(self, token_embeddings: Tensor, offsets: Tensor, num_targets: Tensor | None = None) -> Tensor:
        """[T, d] token embeddings of a jagged batch -> [T, d] encoder inputs."""
        return self.at_positions(token_embeddings, token_positions(offsets, num_targets))

    def at_positions(self, token_embeddings: Tensor, positions: Tensor) -> Tensor:
        """[T, d] token embeddings placed at ``positions`` [T] -> [T, d] encoder inputs."""
        x = token_embeddings * self.scale
        if self.positions is not None:
            x = x + self.positions(positions.clamp(max=self.positions.num_embeddings - 1))
        return self.dropout(x)

