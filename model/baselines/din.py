"""DIN's target attention over the user's history (Zhou et al., KDD 2018) and the DIN ranking model.

The local activation unit scores each history item h against the candidate t with an MLP over
[h, t, h - t, h * t]; the pooled user interest is sum_k w_k h_k with the raw weights, *not*
softmax-normalised, so the pooled vector's magnitude keeps how strongly the history relates to
the candidate (Section 4.3). Used standalone (:class:`DIN`) and as the sequence module of every
other DLRM (``sequence_module: din``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from model.baselines.embedding import FeatureEmbedding, FlatFeatureModel, MeanPooling
from model.baselines.mlp import MLP, TopFactory
from model.flops import matmul_flops
from model.inputs import FeatureSpec

SequenceModule = Literal["mean", "din"]
DIN_UNIT_HIDDEN = (80, 40)  # the activation unit's widths in the DIN paper's experiments


class DINAttention(nn.Module):
    """Pools history [N, K, d] into [N, d] with weights a(h_k, t) from the activation unit."""

    def __init__(self, embedding_dim: int, hidden_dims: Sequence[int] = DIN_UNIT_HIDDEN) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        # PReLU, as the paper's unit (its Dice variant needs batch statistics; PReLU is its baseline).
        self.unit = MLP([4 * embedding_dim, *hidden_dims, 1], activation=nn.PReLU)

    def weights(self, history: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """[N, K] activation weights, 0 at padding."""
        query = target.unsqueeze(1).expand_as(history)  # [N, K, d]
        pairs = torch.cat([history, query, history - query, history * query], dim=-1)  # [N, K, 4d]
        return self.unit(pairs).squeeze(-1) * mask.to(history.dtype)

    def forward(self, history: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """history [N, K, d], mask [N, K], target [N, d] -> [N, d] = sum_k w_k h_k."""
        return torch.einsum("nk,nkd->nd", self.weights(history, mask, target), history)

    def forward_flops(self, rows: int, history_len: int) -> float:
        """The unit's MLP on rows * K pairs, plus the weighted sum (a [1, K] x [K, d] matmul per row)."""
        return self.unit.forward_flops(rows * history_len) + matmul_flops(rows, history_len, self.embedding_dim)


def make_history_pooling(kind: SequenceModule, embedding_dim: int) -> nn.Module:
    """The sequence module a DLRM pools its history with: mean (target-independent) or DIN."""
    if kind == "mean":
        return MeanPooling()
    if kind == "din":
        return DINAttention(embedding_dim)
    raise ValueError(f"sequence_module must be 'mean' or 'din'; got {kind!r}")


class DIN(FlatFeatureModel):
    """DIN: DIN-pooled history, target and context embeddings and dense features -> MLP (or MMoE) top."""

    def __init__(self, spec: FeatureSpec, embedding_dim: int, top_factory: TopFactory) -> None:
        super().__init__(FeatureEmbedding(spec, embedding_dim, DINAttention(embedding_dim)), top_factory)
