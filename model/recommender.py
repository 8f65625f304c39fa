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
    def __init__(self, num_items: int, embedding_dim: int, max_seq_len: int, dropout: float, encoder: nn.Module) -> None:
        super().__init__()
        self.item_embedding = ItemEmbedding(num_items, embedding_dim)
        self.input_layer = InputLayer(embedding_dim, max_seq_len, dropout)
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

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Encoder FLOPs plus scoring: every scored token's [d] output against ``items_per_scored`` items.

        In training the scored tokens are the loss targets and each meets 1 + num_negatives item
        vectors (the positive and the sampled negatives of the sampled softmax); in evaluation
        each query meets the whole catalogue. Embedding lookups, the input layer and the L2
        normalisations are elementwise or lookups (0 FLOPs, model/flops.py).
        """
        width = self.item_embedding.table.embedding_dim
        return self.encoder.forward_flops(workload) + matmul_flops(workload.num_scored, width, workload.items_per_scored)

    def catalogue_vectors(self) -> Tensor:
        """[num_items + 1, d] L2-normalised embeddings of every item (row 0 is padding)."""
        return F.normalize(self.item_embedding.table.weight, dim=-1)
