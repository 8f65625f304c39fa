"""The sparse front end every DLRM shares: one d-vector per categorical feature, the history pooled into one."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.baselines.mlp import TopFactory
from model.flops import ImpressionWorkload
from model.inputs import FeatureSpec, ImpressionFeatures


def _table(rows: int, dim: int) -> nn.Embedding:
    table = nn.Embedding(rows, dim, padding_idx=0)
    # Truncated normal with std 0.02, the GR item tables' initialisation, so both families start alike.
    nn.init.trunc_normal_(table.weight, std=0.02, a=-0.04, b=0.04)
    with torch.no_grad():
        table.weight[0].zero_()
    return table


class MeanPooling(nn.Module):
    """Target-independent pooling: the mean of the valid history embeddings (0 for an empty history)."""

    def forward(self, history: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """history [N, K, d], mask [N, K] True at real items, target [N, d] (unused) -> [N, d]."""
        weights = mask.to(history.dtype).unsqueeze(-1)  # [N, K, 1]
        return (history * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward_flops(self, rows: int, history_len: int) -> float:
        """0: an unweighted sum is a reduction (memory-bound), not a matmul."""
        return 0.0


class FeatureEmbedding(nn.Module):
    """Embeds an impression's ids into ``num_fields`` vectors of width d, stacked as [N, num_fields, d].

    Fields, in order: target item, target category, each sparse column, pooled history. The
    target and the history share one item table (a history item and a candidate are the same
    id space); each history token is e(item) + e(action), so the pooling sees what the user did.
    """

    def __init__(self, spec: FeatureSpec, embedding_dim: int, history_pooling: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.embedding_dim = embedding_dim
        self.items = _table(spec.num_items + 1, embedding_dim)
        self.categories = _table(spec.num_categories + 1, embedding_dim)
        self.actions = _table(spec.num_action_tokens + 1, embedding_dim)
        self.sparse = nn.ModuleList(_table(size, embedding_dim) for size in spec.sparse_vocab_sizes)
        self.history_pooling = history_pooling

    @property
    def num_fields(self) -> int:
        return 3 + self.spec.num_sparse

    def forward(self, features: ImpressionFeatures) -> Tensor:
        """[N, num_fields, d] field embeddings."""
        self._check(features)
        target = self.items(features.target_item_ids)  # [N, d]
        history = self.items(features.history_item_ids) + self.actions(features.history_actions)  # [N, K, d]
        pooled = self.history_pooling(history, features.history_item_ids != 0, target)  # [N, d]
        sparse = [table(features.sparse[:, column]) for column, table in enumerate(self.sparse)]
        return torch.stack([target, self.categories(features.target_categories), *sparse, pooled], dim=1)

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        """Lookups count 0; only the history pooling can cost matmul FLOPs (DIN's activation unit)."""
        return self.history_pooling.forward_flops(workload.num_impressions, workload.history_len)

    def _check(self, features: ImpressionFeatures) -> None:
        if features.sparse.shape[1] != self.spec.num_sparse:
            raise ValueError(
                f"features have {features.sparse.shape[1]} sparse columns but the model was built for "
                f"{self.spec.num_sparse}; build it from this dataset's feature_spec"
            )
        if features.dense.shape[1] != self.spec.num_dense:
            raise ValueError(
                f"features have {features.dense.shape[1]} dense columns but the model was built for "
                f"{self.spec.num_dense}; build it from this dataset's feature_spec"
            )


class FlatFeatureModel(nn.Module):
    """The 'Embedding & MLP' skeleton: [dense | every field embedding, flattened] -> a multi-task top.

    DIN's base model (Zhou et al. 2018, Fig. 2) and the standalone MMoE are this skeleton with a
    particular history pooling or top; no explicit feature-interaction layer.
    """

    def __init__(self, embedding: FeatureEmbedding, top_factory: TopFactory) -> None:
        super().__init__()
        self.embedding = embedding
        self.input_dim = embedding.spec.num_dense + embedding.num_fields * embedding.embedding_dim
        self.top = top_factory(self.input_dim)

    def forward(self, features: ImpressionFeatures) -> Tensor:
        """[N, num_tasks] logits."""
        fields = self.embedding(features)  # [N, M, d]
        return self.top(torch.cat([features.dense, fields.flatten(1)], dim=1))

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        """History pooling plus the top over [N, F + M d]."""
        return self.embedding.forward_flops(workload) + self.top.forward_flops(workload.num_impressions)
