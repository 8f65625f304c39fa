"""SASRec: the causal softmax Transformer of Kang & McAuley (2018), on jagged inputs.

Follows the original block order, which differs from a textbook pre-norm Transformer: the
query stream is layer-normalised and also carries the residual, keys and values read the
un-normalised input, and a position-wise feed-forward block with its own residual follows::

    Q_in = LayerNorm(X)
    X    = Q_in + W_o MultiHead(Q_in W_q, X W_k, X W_v)      (causal softmax)
    X    = LayerNorm(X)
    X    = X + Dropout(W_2 Dropout(ReLU(W_1 X)))

with a final LayerNorm after the stack. The layer also runs M-FALCON's cached passes
(``forward_history``, ``forward_candidates``: see :mod:`model.mfalcon`) with the same projection
and feed-forward code as its forward.
"""

from __future__ import annotations

from torch import Tensor, nn

from kernels import AttentionLayout, CachedKeyValues
from kernels.attention import CachedAttentionBackend
from kernels.flops import attention_flops
from model.dropout import Dropout
from model.flops import SequenceWorkload, matmul_flops
from model.inputs import JaggedSequences
from model.softmax_attention import CausalSoftmaxAttention


class SASRecLayer(CausalSoftmaxAttention, nn.Module):
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
        self.dropout = Dropout(dropout)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """[T, d] -> (Q_in = LayerNorm(X) [T, d], Q [T, H, dqk], K [T, H, dqk], V [T, H, dv]).

        Queries read the normalised input, keys and values the raw one (the original block order).
        """
        tokens = x.shape[0]
        normed = self.attention_norm(x)
        q = self.query(normed).reshape(tokens, self.num_heads, self.qk_dim)
        k = self.key(x).reshape(tokens, self.num_heads, self.qk_dim)
        v = self.value(x).reshape(tokens, self.num_heads, self.v_dim)
        return normed, q, k, v

    def finish(self, normed: Tensor, attended: Tensor) -> Tensor:
        """Q_in + W_o attended [T, H, dv], then LayerNorm and the feed-forward block with its residual."""
        x = normed + self.dropout(self.output(attended.reshape(normed.shape[0], self.num_heads * self.v_dim)))
        x = self.ffn_norm(x)
        return x + self.dropout(self.ffn_out(self.dropout(self.ffn_in(x).relu())))

    def forward(self, x: Tensor, sequences: JaggedSequences, layout: AttentionLayout | None = None) -> Tensor:
        """One layer; ``layout``: the batch's :meth:`attention_layout`, shared by the encoder's layers."""
        normed, q, k, v = self.project(x)
        return self.finish(normed, self.attend(q, k, v, sequences, layout))

    def forward_history(self, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
        """:meth:`forward` over histories alone (plain causal), and their K, V for the candidates to read."""
        normed, q, k, v = self.project(x)
        return self.finish(normed, self.attend(q, k, v, history)), CachedKeyValues(k, v, history.offsets, history.timestamps)

    def forward_candidates(
        self, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend = "auto"
    ) -> Tensor:
        """:meth:`forward` for candidate tokens only, each attending over its cached history and itself."""
        normed, q, k, v = self.project(x)
        attended = self.attend_candidates(q, k, v, candidates, cache, backend)
        return self.finish(normed, attended)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """Forward FLOPs of one layer over a jagged batch of T = sum n_i tokens.

        Projections: Q and K [T, d] x [d, H d_qk], V [T, d] x [d, H d_v], output [T, H d_v] x [H d_v, d];
        causal softmax attention: Q K^T and A V over the P pairs the mask allows (sum n_i (n_i + 1) / 2
        when causal), 2 P H (d_qk + d_v); feed-forward: [T, d] x [d, d_ff] and [T, d_ff] x [d_ff, d].
        Norms, softmax, ReLU and residuals are elementwise (0 FLOPs by convention, model/flops.py).
        """
        tokens, width = workload.num_tokens, self.query.in_features
        heads, qk_dim, v_dim, ffn_dim = self.num_heads, self.qk_dim, self.v_dim, self.ffn_in.out_features
        projections = matmul_flops(tokens, width, heads * (2 * qk_dim + v_dim)) + matmul_flops(tokens, heads * v_dim, width)
        feed_forward = matmul_flops(tokens, width, ffn_dim) + matmul_flops(tokens, ffn_dim, width)
        return projections + attention_flops(workload.attention_pairs, heads, qk_dim, v_dim) + feed_forward


class SASRecEncoder(nn.Module):
    def __init__(self, layers: list[SASRecLayer], embedding_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.final_norm = nn.LayerNorm(embedding_dim)

    def forward(self, x: Tensor, sequences: JaggedSequences) -> Tensor:
        layout = self.layers[0].attention_layout(sequences) if len(self.layers) else None  # once for all layers
        for layer in self.layers:
            x = layer(x, sequences, layout)
        return self.final_norm(x)

    def forward_flops(self, workload: SequenceWorkload) -> float:
        """The sum of the layers' forward FLOPs (the final LayerNorm is elementwise)."""
        return sum(layer.forward_flops(workload) for layer in self.layers)
