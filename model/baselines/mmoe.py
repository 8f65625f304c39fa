"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): the multi-task top of every DLRM, and a model.

Experts f_i are MLPs shared by all tasks; task k mixes them with its own softmax gate and
reads the mixture with its own tower h_k (Eq. 5-6 of the paper):

    y_k = h_k( sum_i g_k(x)_i f_i(x) ),   g_k(x) = softmax(W_k x).

:func:`multitask_top` builds either this or a plain shared MLP ending in T logits
(``top: mlp | mmoe``) for any model's interaction output.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from model.baselines.embedding import FeatureEmbedding, FlatFeatureModel
from model.baselines.mlp import MLP, TopFactory
from model.flops import matmul_flops
from model.inputs import FeatureSpec

TopKind = Literal["mlp", "mmoe"]


class MMoE(nn.Module):
    """[N, in_dim] -> [N, num_tasks] logits through shared experts, per-task gates and towers."""

    def __init__(
        self,
        in_dim: int,
        num_tasks: int,
        num_experts: int,
        expert_hidden: tuple[int, ...],
        tower_hidden: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not expert_hidden:
            raise ValueError("MMoE experts need at least one hidden layer (set mlp_layers >= 1)")
        self.num_tasks, self.num_experts = num_tasks, num_experts
        self.expert_dim = expert_hidden[-1]
        self.experts = nn.ModuleList(
            MLP([in_dim, *expert_hidden], activate_last=True, dropout=dropout) for _ in range(num_experts)
        )
        self.gates = nn.Linear(in_dim, num_tasks * num_experts)  # all tasks' gates in one matmul
        self.towers = nn.ModuleList(MLP([self.expert_dim, tower_hidden, 1], dropout=dropout) for _ in range(num_tasks))

    def gate_weights(self, x: Tensor) -> Tensor:
        """[N, T, E] softmax mixture weights of each task over the experts."""
        return self.gates(x).view(-1, self.num_tasks, self.num_experts).softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)  # [N, E, h]
        mixed = torch.einsum("nte,neh->nth", self.gate_weights(x), experts)  # [N, T, h]
        return torch.cat([tower(mixed[:, task]) for task, tower in enumerate(self.towers)], dim=1)  # [N, T]

    def forward_flops(self, rows: int) -> float:
        """Experts, gates ([in] x [in, T E]), the mixture ([T, E] x [E, h] per row) and towers."""
        experts = sum(expert.forward_flops(rows) for expert in self.experts)
        gates = matmul_flops(rows, self.gates.in_features, self.gates.out_features)
        mixture = matmul_flops(rows * self.num_tasks, self.num_experts, self.expert_dim)
        return experts + gates + mixture + sum(tower.forward_flops(rows) for tower in self.towers)


def multitask_top(
    kind: TopKind, num_tasks: int, hidden_dim: int, mlp_layers: int, num_experts: int, dropout: float = 0.0
) -> TopFactory:
    """A factory of the top a model puts on its interaction output.

    mlp: a shared MLP with ``mlp_layers`` hidden layers of ``hidden_dim`` ending in T logits
    (the usual DLRM top; 0 hidden layers is a logistic layer). mmoe: ``num_experts`` experts with
    ``mlp_layers`` hidden layers each, a softmax gate and a one-hidden-layer tower per task.
    """
    hidden = (hidden_dim,) * mlp_layers
    if kind == "mlp":
        return lambda in_dim: MLP([in_dim, *hidden, num_tasks], dropout=dropout)
    if kind == "mmoe":
        return lambda in_dim: MMoE(in_dim, num_tasks, num_experts, hidden, hidden_dim, dropout)
    raise ValueError(f"top must be 'mlp' or 'mmoe'; got {kind!r}")


class MMoEModel(FlatFeatureModel):
    """Standalone MMoE: [dense | field embeddings] -> MMoE (no explicit interaction layer)."""

    def __init__(
        self,
        spec: FeatureSpec,
        embedding_dim: int,
        history_pooling: nn.Module,
        num_experts: int,
        expert_hidden: tuple[int, ...],
        tower_hidden: int,
        dropout: float = 0.0,
    ) -> None:
        embedding = FeatureEmbedding(spec, embedding_dim, history_pooling)
        super().__init__(
            embedding,
            lambda in_dim: MMoE(in_dim, spec.num_tasks, num_experts, expert_hidden, tower_hidden, dropout),
        )
