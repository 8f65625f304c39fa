"""DHEN (Zhang et al. 2022): stacked layers, each an ensemble of heterogeneous interaction modules.

The input is a set of M feature vectors X [N, M, d] (dense features projected to one vector,
plus the field embeddings). Every module maps X to [N, M, d]; a layer combines the modules'
outputs and adds a shortcut (Section 3 of the paper):

    Y = LayerNorm( Ensemble(I_1(X), ..., I_k(X)) + X ),

with Ensemble = concatenation along the feature axis followed by a linear map k d -> d per
vector (the concat ensemble; a learned weighted sum is its special case). Stacking layers
builds a hierarchy: layer l's modules interact layer l-1's already-mixed interactions.
Modules: ``attention`` (multi-head self-attention over the M vectors), ``cross`` (a DCN-v2
cross x * (W x + b) on the flattened input), ``linear`` (one linear map of the flattened
input), ``mlp`` (a one-hidden-layer MLP of the flattened input) and ``dot`` (DLRM pairwise dot
products, linearly mapped back to M vectors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from model.baselines.dlrm import DotInteraction
from model.baselines.embedding import FeatureEmbedding
from model.baselines.mlp import MLP, TopFactory
from model.flops import ImpressionWorkload, matmul_flops
from model.inputs import FeatureSpec, ImpressionFeatures

DHENModule = Literal["attention", "cross", "linear", "mlp", "dot"]


class SelfAttentionInteraction(nn.Module):
    """Softmax multi-head self-attention among the M vectors (no mask: they are a set, not a sequence)."""

    def __init__(self, dim: int, num_heads: int, qk_dim: int, v_dim: int) -> None:
        super().__init__()
        self.num_heads, self.qk_dim, self.v_dim = num_heads, qk_dim, v_dim
        self.query = nn.Linear(dim, num_heads * qk_dim)
        self.key = nn.Linear(dim, num_heads * qk_dim)
        self.value = nn.Linear(dim, num_heads * v_dim)
        self.output = nn.Linear(num_heads * v_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, m, _ = x.shape
        q = self.query(x).view(n, m, self.num_heads, self.qk_dim).transpose(1, 2)  # [N, H, M, dqk]
        k = self.key(x).view(n, m, self.num_heads, self.qk_dim).transpose(1, 2)
        v = self.value(x).view(n, m, self.num_heads, self.v_dim).transpose(1, 2)  # [N, H, M, dv]
        weights = (q @ k.transpose(-1, -2) / math.sqrt(self.qk_dim)).softmax(dim=-1)  # [N, H, M, M]
        attended = (weights @ v).transpose(1, 2).reshape(n, m, self.num_heads * self.v_dim)
        return self.output(attended)

    def forward_flops(self, rows: int, num_vectors: int) -> float:
        tokens, dim = rows * num_vectors, self.query.in_features
        projections = matmul_flops(tokens, dim, self.num_heads * (2 * self.qk_dim + self.v_dim))
        scores = rows * self.num_heads * matmul_flops(num_vectors, self.qk_dim, num_vectors)
        mixing = rows * self.num_heads * matmul_flops(num_vectors, num_vectors, self.v_dim)
        return projections + scores + mixing + matmul_flops(tokens, self.num_heads * self.v_dim, dim)


class CrossInteraction(nn.Module):
    """x * (W x + b) on the flattened [N, M d] input (the residual comes from the layer's shortcut)."""

    def __init__(self, flat_dim: int, rank: int) -> None:
        super().__init__()
        self.flat_dim, self.rank = flat_dim, rank
        self.project = (
            nn.Linear(flat_dim, flat_dim)
            if rank == 0
            else nn.Sequential(nn.Linear(flat_dim, rank, bias=False), nn.Linear(rank, flat_dim))
        )

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        return (flat * self.project(flat)).view_as(x)

    def forward_flops(self, rows: int, num_vectors: int) -> float:
        if self.rank == 0:
            return matmul_flops(rows, self.flat_dim, self.flat_dim)
        return 2 * matmul_flops(rows, self.flat_dim, self.rank)


class FlatInteraction(nn.Module):
    """Any [N, M d] -> [N, M d] network (``linear``: one Linear; ``mlp``: an MLP) viewed per vector."""

    def __init__(self, network: MLP) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x.flatten(1)).view_as(x)

    def forward_flops(self, rows: int, num_vectors: int) -> float:
        return self.network.forward_flops(rows)


class DotProductInteraction(nn.Module):
    """DLRM's pairwise dot products of the M vectors, mapped linearly back to [N, M, d]."""

    def __init__(self, num_vectors: int, dim: int) -> None:
        super().__init__()
        self.dots = DotInteraction(num_vectors)
        self.expand = nn.Linear(self.dots.out_dim, num_vectors * dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.expand(self.dots(x)).view_as(x)

    def forward_flops(self, rows: int, num_vectors: int) -> float:
        dim = self.expand.out_features // num_vectors
        return self.dots.forward_flops(rows, dim) + matmul_flops(rows, self.expand.in_features, self.expand.out_features)


class DHENLayer(nn.Module):
    """LayerNorm(concat-ensemble of the modules' outputs + X): [N, M, d] -> [N, M, d]."""

    def __init__(self, modules: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        if not modules:
            raise ValueError("a DHEN layer needs at least one interaction module")
        self.interactions = nn.ModuleList(modules)
        self.ensemble = nn.Linear(len(modules) * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        outputs = torch.cat([module(x) for module in self.interactions], dim=-1)  # [N, M, k d]
        return self.norm(self.ensemble(outputs) + x)

    def forward_flops(self, rows: int, num_vectors: int) -> float:
        modules = sum(module.forward_flops(rows, num_vectors) for module in self.interactions)
        return modules + matmul_flops(rows * num_vectors, self.ensemble.in_features, self.ensemble.out_features)


def make_interaction(
    kind: DHENModule, num_vectors: int, dim: int, hidden_dim: int, rank: int, num_heads: int, qk_dim: int, v_dim: int
) -> nn.Module:
    """One DHEN interaction module for M = ``num_vectors`` vectors of width ``dim``."""
    flat = num_vectors * dim
    if kind == "attention":
        return SelfAttentionInteraction(dim, num_heads, qk_dim, v_dim)
    if kind == "cross":
        return CrossInteraction(flat, rank)
    if kind == "linear":
        return FlatInteraction(MLP([flat, flat]))
    if kind == "mlp":
        return FlatInteraction(MLP([flat, hidden_dim, flat]))
    if kind == "dot":
        return DotProductInteraction(num_vectors, dim)
    raise ValueError(f"unknown DHEN module {kind!r}; choose from attention, cross, linear, mlp, dot")


class DHEN(nn.Module):
    def __init__(
        self,
        spec: FeatureSpec,
        embedding_dim: int,
        history_pooling: nn.Module,
        modules: Sequence[DHENModule],
        num_layers: int,
        top_factory: TopFactory,
        hidden_dim: int,
        rank: int = 0,
        num_heads: int = 1,
        qk_dim: int | None = None,
        v_dim: int | None = None,
    ) -> None:
        super().__init__()
        if spec.num_dense < 1:
            raise ValueError("DHEN projects the dense features to one vector; the spec has none")
        self.embedding = FeatureEmbedding(spec, embedding_dim, history_pooling)
        self.dense_projection = nn.Linear(spec.num_dense, embedding_dim)
        self.num_vectors = self.embedding.num_fields + 1
        qk_dim = qk_dim if qk_dim is not None else embedding_dim // num_heads
        v_dim = v_dim if v_dim is not None else embedding_dim // num_heads
        def layer() -> DHENLayer:
            interactions = [
                make_interaction(kind, self.num_vectors, embedding_dim, hidden_dim, rank, num_heads, qk_dim, v_dim)
                for kind in modules
            ]
            return DHENLayer(interactions, embedding_dim)

        self.layers = nn.ModuleList(layer() for _ in range(num_layers))
        self.top = top_factory(self.num_vectors * embedding_dim)

    def forward(self, features: ImpressionFeatures) -> Tensor:
        """[N, num_tasks] logits."""
        fields = self.embedding(features)  # [N, M - 1, d]; checks the features against the spec first
        dense = self.dense_projection(features.dense).unsqueeze(1)  # [N, 1, d]
        x = torch.cat([dense, fields], dim=1)  # [N, M, d]
        for layer in self.layers:
            x = layer(x)
        return self.top(x.flatten(1))

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        """Dense projection + history pooling + every layer's modules and ensemble map + top."""
        rows = workload.num_impressions
        projection = matmul_flops(rows, self.dense_projection.in_features, self.dense_projection.out_features)
        layers = sum(layer.forward_flops(rows, self.num_vectors) for layer in self.layers)
        return projection + self.embedding.forward_flops(workload) + layers + self.top.forward_flops(rows)
