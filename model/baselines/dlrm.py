"""DLRM (Naumov et al. 2019): bottom MLP over dense features, pairwise dot interaction, top MLP.

The dense features are mapped by the bottom MLP to one d-vector; together with the M field
embeddings (item, category, sparse columns, pooled history) that gives M + 1 vectors whose
pairwise dot products (upper triangle, no diagonal: Section 2.2's "dot" interaction) are
concatenated with the bottom output and read by the top.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.baselines.embedding import FeatureEmbedding
from model.baselines.mlp import MLP, TopFactory
from model.flops import ImpressionWorkload, matmul_flops
from model.inputs import FeatureSpec, ImpressionFeatures


class DotInteraction(nn.Module):
    """[N, M, d] vectors -> [N, M (M - 1) / 2] dot products z_i . z_j for i < j."""

    def __init__(self, num_vectors: int) -> None:
        super().__init__()
        self.num_vectors = num_vectors
        rows, cols = torch.triu_indices(num_vectors, num_vectors, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    @property
    def out_dim(self) -> int:
        return self.num_vectors * (self.num_vectors - 1) // 2

    def forward(self, vectors: Tensor) -> Tensor:
        gram = torch.bmm(vectors, vectors.transpose(1, 2))  # [N, M, M]
        return gram[:, self.rows, self.cols]

    def forward_flops(self, rows: int, dim: int) -> float:
        """The full [M, d] x [d, M] Gram matrix per row (the batched matmul computes both triangles)."""
        return rows * matmul_flops(self.num_vectors, dim, self.num_vectors)


class DLRM(nn.Module):
    def __init__(
        self,
        spec: FeatureSpec,
        embedding_dim: int,
        hidden_dim: int,
        history_pooling: nn.Module,
        top_factory: TopFactory,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spec.num_dense < 1:
            raise ValueError("DLRM's bottom MLP needs at least one dense feature; the spec has none")
        self.embedding = FeatureEmbedding(spec, embedding_dim, history_pooling)
        # Bottom MLP F -> hidden -> d with ReLU after both layers, as in the reference DLRM.
        self.bottom = MLP([spec.num_dense, hidden_dim, embedding_dim], activate_last=True, dropout=dropout)
        self.interaction = DotInteraction(self.embedding.num_fields + 1)
        self.top = top_factory(embedding_dim + self.interaction.out_dim)

    def forward(self, features: ImpressionFeatures) -> Tensor:
        """[N, num_tasks] logits."""
        fields = self.embedding(features)  # [N, M, d]; checks the features against the spec first
        dense = self.bottom(features.dense)  # [N, d]
        vectors = torch.cat([dense.unsqueeze(1), fields], dim=1)  # [N, M + 1, d]
        return self.top(torch.cat([dense, self.interaction(vectors)], dim=1))

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        """Bottom MLP + history pooling + Gram matrix + top."""
        rows = workload.num_impressions
        return (
            self.bottom.forward_flops(rows)
            + self.embedding.forward_flops(workload)
            + self.interaction.forward_flops(rows, self.embedding.embedding_dim)
            + self.top.forward_flops(rows)
        )
