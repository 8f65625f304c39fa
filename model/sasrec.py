"""SASRec: the causal softmax Transformer of Kang & McAuley (2018), on jagged inputs.

Follows the original block order, which differs from a textbook pre-norm Transformer: the
query stream is layer-normalised and also carries the residual, keys and values read the
un-normalised input, and a position-wise feed-forward block with its own residual follows::

    Q_in = LayerNorm(X)
    X    = Q_in + W_o MultiHead(Q_in W_q, X W_k, X W_v)      (causal softmax)
    X    = LayerNorm(X)
    X    = X + Dropout(W_2 Dropout(ReLU(W_1 X)))

with a final LayerNorm after the stack.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from kernels import jagged_attention
from model.inputs import JaggedSequences


class SASRecLayer(nn.Module):
    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        qk_dim: int,
        v_dim: int,
        ffn_dim: int,
        dropout: float,
        max_seq_len: int,
        attention_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.num_heads, self.qk_dim, self.v_dim = num_heads, qk_dim, v_dim
        self.max_seq_len = max_seq_len
        self.attention_backend = attention_backend
        self.attention_norm = nn.LayerNorm(embedding_dim)
        self.query = nn.Linear(embedding_dim, num_heads * qk_dim)
        self.key = nn.Linear(embedding_dim, num_heads * qk_dim)
        self.value = nn.Linear(embedding_dim, num_heads * v_dim)
        self.output = nn.Linear(num_heads * v_dim, embedding_dim)
        self.ffn_norm = nn.LayerNorm(embedding_dim)
        self.ffn_in = nn.Linear(embedding_dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, embedding_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, sequences: JaggedSequences) -> Tensor:
        tokens = x.shape[0]
        normed = self.attention_norm(x)
        q = self.query(normed).reshape(tokens, self.num_heads, self.qk_dim)
        k = self.key(x).reshape(tokens, self.num_heads, self.qk_dim)
        v = self.value(x).reshape(tokens, self.num_heads, self.v_dim)
        attended = jagged_attention(
            q, k, v, sequences.offsets,
            max_seq_len=self.max_seq_len,
            activation="softmax",
            scale=1.0 / math.sqrt(self.qk_dim),
            num_targets=sequences.num_targets,
            backend=self.attention_backend,
        )
        x = normed + self.dropout(self.output(attended.reshape(tokens, self.num_heads * self.v_dim)))
        x = self.ffn_norm(x)
        return x + self.dropout(self.ffn_out(self.dropout(self.ffn_in(x).relu())))


class SASRecEncoder(nn.Module):
    def __init__(self, layers: list[SASRecLayer], embedding_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.LayerNorm(embedding_dim)

    def forward(self, x: Tensor, sequences: JaggedSequences) -> Tensor:
        for layer in self.layers:
            x = layer(x, sequences)
        return self.final_norm(x)
