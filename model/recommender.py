"""Sequential GR models: token embeddings -> input layer -> encoder -> a retrieval or ranking head.

The encoder (HSTU, SASRec, ...) is the only part that differs between sequential models, so
they share this backbone. A token's input embedding is the sum of its item, action and
contextual-feature embeddings (any may be absent), as the interleaved formulation of Table 1
needs. Retrieval outputs are L2-normalised and scored against the same (normalised) item table;
ranking reads each item token's output through a small MLP per task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.embeddings import InputLayer, ItemEmbedding
from model.flops import SequenceWorkload, matmul_flops
from model.inputs import JaggedSequences, Vocabulary


class TokenEmbedding(nn.Module):
    """sum of item, action and context embeddings of each token (0 ids contribute nothing)."""

    def __init__(self, vocabulary: Vocabulary, embedding_dim: int) -> None:
        super().__init__()
        self.items = ItemEmbedding(vocabulary.num_items, embedding_dim)
        self.actions = _optional_table(vocabulary.num_action_tokens, embedding_dim)
        self.contexts = _optional_table(vocabulary.num_context_tokens, embedding_dim)

    def forward(self, sequences: JaggedSequences) -> Tensor:
        x = self.items(sequences.item_ids)
        if self.actions is not None and sequences.action_ids is not None:
            x = x + self.actions(sequences.action_ids)
        if self.contexts is not None and sequences.context_ids is not None:
            x = x + self.contexts(sequences.context_ids)
        return x


def _optional_table(size: int, embedding_dim: int) -> nn.Embedding | None:
    if size <= 0:
        return None
    table = nn.Embedding(size + 1, embedding_dim, padding_idx=0)
    nn.init.trunc_normal_(table.weight, std=0.02, a=-0.04, b=0.04)
    with torch.no_grad():
        table.weight[0].zero_()
    return table


class SequenceBackbone(nn.Module):
    """Embeddings, input layer and encoder: [T] tokens -> [T, d] contextual representations."""

    def __init__(self, vocabulary: Vocabulary, embedding_dim: int, dropout: float, encoder: nn.Module,
                 absolute_positions: bool = True) -> None:
        super().__init__()
        self.embedding = TokenEmbedding(vocabulary, embedding_dim)
        self.input_layer = InputLayer(embedding_dim, vocabulary.max_seq_len, dropout, absolute_positions)
        self.encoder = encoder

    def forward(self, sequences: JaggedSequences) -> Tensor:
        x = self.input_layer(self.embedding(sequences), sequences.offsets, sequences.num_targets)
        return self.encoder(x, sequences)

    @property
    def embedding_dim(self) -> int:
        return self.embedding.items.table.embedding_dim

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Encoder FLOPs (embedding lookups and the input layer's elementwise work count 0)."""
        encoder_flops = getattr(self.encoder, "forward_flops", None)
        if encoder_flops is None:
            raise NotImplementedError(f"{type(self.encoder).__name__} does not implement forward_flops(workload)")
        return encoder_flops(workload)


class SequentialRetrievalModel(nn.Module):
    """Next-item retrieval: cosine similarity between the token's output and item embeddings."""

    # Item vectors are rows of one normalised table, so losses may score against the whole table.
    item_vectors_are_a_table = True

    def __init__(self, backbone: SequenceBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def num_items(self) -> int:
        return self.backbone.embedding.items.num_items

    def forward(self, sequences: JaggedSequences) -> Tensor:
        """[T, d] L2-normalised user representation at every token."""
        return F.normalize(self.backbone(sequences), dim=-1)

    def item_vectors(self, item_ids: Tensor) -> Tensor:
        """[..., d] L2-normalised output embeddings of ``item_ids``."""
        return F.normalize(self.backbone.embedding.items(item_ids), dim=-1)

    def catalogue_vectors(self) -> Tensor:
        """[num_items + 1, d] L2-normalised embeddings of every item (row 0 is padding)."""
        return F.normalize(self.backbone.embedding.items.table.weight, dim=-1)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Encoder FLOPs plus scoring: each scored token's [d] vector against ``items_per_scored`` items.

        Scoring is one [1, d] x [d, items_per_scored] product per scored token, 2 d items_per_scored
        FLOPs; embedding lookups and L2 normalisation count 0 (:mod:`model.flops`).
        """
        scoring = workload.num_scored * matmul_flops(1, self.backbone.embedding_dim, workload.items_per_scored)
        return self.backbone.forward_flops(workload) + scoring


class TaskHeads(nn.Module):
    """One small MLP per task: LayerNorm -> Linear(d, d) -> SiLU -> Linear(d, 1)."""

    def __init__(self, embedding_dim: int, num_tasks: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(embedding_dim), nn.Linear(embedding_dim, embedding_dim), nn.SiLU(),
                          nn.Linear(embedding_dim, 1))
            for _ in range(num_tasks)
        )

    def forward(self, x: Tensor) -> Tensor:
        """[N, d] -> [N, K] logits."""
        return torch.cat([head(x) for head in self.heads], dim=-1)

    def forward_flops(self, rows: int) -> float:
        """K heads on ``rows`` outputs: [N, d] x [d, d] then [N, d] x [d, 1] each (LayerNorm, SiLU: 0)."""
        linears = (layer for head in self.heads for layer in head if isinstance(layer, nn.Linear))
        return sum(matmul_flops(rows, linear.in_features, linear.out_features) for linear in linears)


class SequentialRankingModel(nn.Module):
    """GR ranking (Table 1): the output at item token Phi_i predicts a_i, one logit per task."""

    def __init__(self, backbone: SequenceBackbone, num_tasks: int, embedding_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = TaskHeads(embedding_dim, num_tasks)

    def forward(self, sequences: JaggedSequences, rows: Tensor | None = None) -> Tensor:
        """[T, K] task logits at every token, or [S, K] at token ``rows`` only (cheaper)."""
        encoded = self.backbone(sequences)
        return self.heads(encoded if rows is None else encoded[rows])

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Encoder over every token plus the task heads on the scored (labelled) tokens."""
        return self.backbone.forward_flops(workload) + self.heads.forward_flops(workload.num_scored)
