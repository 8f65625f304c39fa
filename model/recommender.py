"""A sequential retrieval model: item embeddings -> input layer -> encoder -> L2-normalised outputs.

The encoder (HSTU, SASRec, ...) is the only part that differs between generative retrieval
models, so they all share this wrapper, its loss and its full-catalogue scoring.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from model.embeddings import InputLayer, ItemEmbedding
from model.flops import SequenceWorkload, matmul_flops
from model.inputs import JaggedSequences


class SequentialRetrievalModel(nn.Module):
    def __init__(
        self,
        num_items: int,
        embedding_dim: int,
        max_seq_len: int,
        dropout: float,
        encoder: nn.Module,
        absolute_positions: bool = True,
    ) -> None:
        """``absolute_positions=False`` for encoders that encode positions themselves (RoPE)."""
        super().__init__()
        self.item_embedding = ItemEmbedding(num_items, embedding_dim)
        self.input_layer = InputLayer(embedding_dim, max_seq_len, dropout, absolute_positions)
        self.encoder = encoder

    @property
    def num_items(self) -> int:
        return self.item_embedding.num_items

    def forward(self, sequences: JaggedSequences) -> Tensor:
        """[T, d] L2-normalised user representation at every token."""
        x = self.input_layer(self.item_embedding(sequences.item_ids), sequences.offsets)
        return F.normalize(self.encoder(x, sequences), dim=-1)

    def item_vectors(self, item_ids: Tensor) -> Tensor:
        """[..., d] L2-normalised output embeddings of ``item_ids``."""
        return F.normalize(self.item_embedding(item_ids), dim=-1)

    def catalogue_vectors(self) -> Tensor:
        """[num_items + 1, d] L2-normalised embeddings of every item (row 0 is padding)."""
        return F.normalize(self.item_embedding.table.weight, dim=-1)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Encoder FLOPs plus scoring: each scored token's [d] vector against ``items_per_scored`` items.

        Scoring is one [1, d] x [d, items_per_scored] product per scored token, 2 d items_per_scored
        FLOPs; embedding lookups and L2 normalisation count 0 (:mod:`model.flops`).
        """
        encoder_flops = getattr(self.encoder, "forward_flops", None)
        if encoder_flops is None:
            raise NotImplementedError(f"{type(self.encoder).__name__} does not implement forward_flops(workload)")
        embedding_dim = self.item_embedding.table.embedding_dim
        return encoder_flops(workload) + workload.num_scored * matmul_flops(1, embedding_dim, workload.items_per_scored)
