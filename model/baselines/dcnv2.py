"""DCN-v2 (Wang et al., WWW 2021): explicit bounded-degree feature crosses plus a deep network.

x_0 = [dense | field embeddings] (width D). A cross layer computes (Eq. 1)

    x_{l+1} = x_0 * (W x_l + b) + x_l,

with W full rank [D, D] or low rank W = U V^T (U, V: [D, r]; Section 5, "low-rank DCN").
DCN-Mix (Eq. 3) replaces it with gated low-rank experts in nonlinear subspaces,

    x_{l+1} = sum_i G_i(x_l) x_0 * (U_i g(C_i g(V_i^T x_l)) + b) + x_l,  G = softmax(W_g x_l).

The deep network runs after the cross network ('stacked') or beside it ('parallel', the two
outputs concatenated); either way a multi-task top produces the logits.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from model.baselines.embedding import FeatureEmbedding
from model.baselines.mlp import MLP, TopFactory
from model.flops import ImpressionWorkload, matmul_flops
from model.inputs import FeatureSpec, ImpressionFeatures

CrossStructure = Literal["stacked", "parallel"]


class CrossLayer(nn.Module):
    """x_0 * (W x_l + b) + x_l with W full rank (rank 0) or U V^T of rank ``rank``."""

    def __init__(self, dim: int, rank: int = 0) -> None:
        super().__init__()
        self.dim, self.rank = dim, rank
        if rank == 0:
            self.project = nn.Linear(dim, dim)
        else:
            self.project = nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim))  # U (V^T x) + b

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        return x0 * self.project(x) + x

    def forward_flops(self, rows: int) -> float:
        if self.rank == 0:
            return matmul_flops(rows, self.dim, self.dim)
        return 2 * matmul_flops(rows, self.dim, self.rank)


class MixtureCrossLayer(nn.Module):
    """DCN-Mix: ``num_experts`` low-rank cross experts with a softmax gate on x_l; g = ReLU."""

    def __init__(self, dim: int, rank: int, num_experts: int) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"DCN-Mix experts are low rank: rank must be >= 1; got {rank} (set low_rank)")
        self.dim, self.rank, self.num_experts = dim, rank, num_experts
        self.down = nn.Parameter(torch.randn(num_experts, dim, rank) / dim**0.5)  # V_i: [D, r]
        self.middle = nn.Parameter(torch.randn(num_experts, rank, rank) / rank**0.5)  # C_i: [r, r]
        self.up = nn.Parameter(torch.randn(num_experts, rank, dim) / rank**0.5)  # U_i^T: [r, D]
        self.bias = nn.Parameter(torch.zeros(dim))
        self.gate = nn.Linear(dim, num_experts, bias=False)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        low = torch.einsum("nd,edr->ner", x, self.down).relu()  # [N, E, r]
        low = torch.einsum("ner,ers->nes", low, self.middle).relu()  # [N, E, r]
        experts = x0.unsqueeze(1) * (torch.einsum("ner,erd->ned", low, self.up) + self.bias)  # [N, E, D]
        gates = self.gate(x).softmax(dim=-1)  # [N, E]
        return torch.einsum("ne,ned->nd", gates, experts) + x

    def forward_flops(self, rows: int) -> float:
        """Per expert V^T, C, U matmuls; the gate; the gated sum ([1, E] x [E, D] per row)."""
        per_expert = 2 * matmul_flops(rows, self.dim, self.rank) + matmul_flops(rows, self.rank, self.rank)
        gate = matmul_flops(rows, self.dim, self.num_experts)
        return self.num_experts * per_expert + gate + matmul_flops(rows, self.num_experts, self.dim)


class CrossNetwork(nn.Module):
    """``num_layers`` cross layers applied to x_0, each reading x_0 and the previous output."""

    def __init__(self, dim: int, num_layers: int, rank: int = 0, num_experts: int = 1) -> None:
        super().__init__()
        make = (lambda: MixtureCrossLayer(dim, rank, num_experts)) if num_experts > 1 else (lambda: CrossLayer(dim, rank))
        self.layers = nn.ModuleList(make() for _ in range(num_layers))

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        for layer in self.layers:
            x = layer(x0, x)
        return x

    def forward_flops(self, rows: int) -> float:
        return sum(layer.forward_flops(rows) for layer in self.layers)


class DCNv2(nn.Module):
    def __init__(
        self,
        spec: FeatureSpec,
        embedding_dim: int,
        history_pooling: nn.Module,
        num_cross_layers: int,
        top_factory: TopFactory,
        structure: CrossStructure = "stacked",
        rank: int = 0,
        cross_experts: int = 1,
        deep_hidden: tuple[int, ...] = (),
        dropout: float = 0.0,
    ) -> None:
        """Stacked: the deep network is the top itself (cross -> deep -> logits).

        Parallel: ``deep_hidden`` gives the widths of the deep network beside the cross network,
        and the top reads [cross(x_0) | deep(x_0)] (the paper combines them with a logistic layer).
        """
        super().__init__()
        self.embedding = FeatureEmbedding(spec, embedding_dim, history_pooling)
        self.input_dim = spec.num_dense + self.embedding.num_fields * embedding_dim
        self.cross = CrossNetwork(self.input_dim, num_cross_layers, rank, cross_experts)
        self.deep: MLP | None = None
        if structure == "parallel":
            if not deep_hidden:
                raise ValueError("the parallel structure needs a deep network: give it >= 1 hidden layer (mlp_layers)")
            self.deep = MLP([self.input_dim, *deep_hidden], activate_last=True, dropout=dropout)
            self.top = top_factory(self.input_dim + self.deep.out_dim)
        elif structure == "stacked":
            self.top = top_factory(self.input_dim)
        else:
            raise ValueError(f"cross_structure must be 'stacked' or 'parallel'; got {structure!r}")

    def forward(self, features: ImpressionFeatures) -> Tensor:
        """[N, num_tasks] logits."""
        x0 = torch.cat([features.dense, self.embedding(features).flatten(1)], dim=1)  # [N, D]
        crossed = self.cross(x0)
        if self.deep is None:
            return self.top(crossed)
        return self.top(torch.cat([crossed, self.deep(x0)], dim=1))

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        """History pooling + cross network + (parallel) deep network + top."""
        rows = workload.num_impressions
        deep = self.deep.forward_flops(rows) if self.deep is not None else 0.0
        return self.embedding.forward_flops(workload) + self.cross.forward_flops(rows) + deep + self.top.forward_flops(rows)
