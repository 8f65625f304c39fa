"""M-FALCON (paper Section 3.4, Appendix H, Algorithm 1): score m ranking candidates for one user.

A GR ranking model reads candidate Phi'_i as an item token placed right after the user's history
tokens x_0 .. x_{n-1} (Phi_0, a_0, ...); its output there gives the logits of a'_i. Three scoring
paths produce the same logits (up to floating-point rounding):

* ``naive``: one forward pass per candidate over the n + 1 tokens [history ; Phi'_i] with the
  standard causal mask: m passes of O((n + 1)^2 d) attention ("common wisdom", Appendix H).
* ``batched``: one forward pass per microbatch of b_m candidates over [history ; b_m candidates]
  with ``num_targets = b_m``: candidates see the history and themselves, never each other, and
  every candidate sits at position n (Figure 11b; the mask and position rule of
  ``kernels/attention.py``). ceil(m / b_m) passes of O((n + b_m)^2 d).
* ``cached`` (M-FALCON with the encoder-level KV cache): history queries never see candidates,
  so the history's layer outputs (hence each layer's K(X), V(X) of the history) do not depend on
  them. The history is encoded once, caching per layer its K and V; a microbatch then computes
  U, Q, K, V for its b_m candidate tokens only and attends over [cached history K, V ; each
  candidate's own K, V] (:func:`kernels.cached_target_attention`), then f2(Norm(AV) * U) for the
  candidates only: O(b_m d^2 + b_m n d) per pass (see :func:`scoring_flops`).

HSTU (pointwise or the softmax ablation, any rab) and SASRec encoders are supported; all three
paths need ``model.eval()`` (dropout would randomise the scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from kernels import CachedKeyValues, cached_target_attention
from kernels.attention import CachedAttentionBackend
from model.hstu import HSTUEncoder, HSTULayer
from model.inputs import JaggedSequences
from model.recommender import SequentialRankingModel
from model.sasrec import SASRecEncoder, SASRecLayer

ScoringPath = Literal["naive", "batched", "cached"]
SCORING_PATHS: tuple[str, ...] = ("naive", "batched", "cached")


@dataclass(frozen=True)
class RankingRequest:
    """One user's history tokens and the m candidates to score after it."""

    history: JaggedSequences  # one sequence of n >= 0 tokens (offsets [0, n]), no num_targets
    candidate_item_ids: Tensor  # [m] int64
    candidate_timestamps: Tensor  # [m] int64 seconds: request time, each candidate's timestamp and query time

    def __post_init__(self) -> None:
        if self.history.num_sequences != 1 or self.history.num_targets is not None:
            raise ValueError("a RankingRequest's history must be one sequence without num_targets")
        if self.candidate_item_ids.dim() != 1 or self.candidate_timestamps.shape != self.candidate_item_ids.shape:
            raise ValueError(
                f"candidate_item_ids and candidate_timestamps must both be [m]; got "
                f"{tuple(self.candidate_item_ids.shape)} and {tuple(self.candidate_timestamps.shape)}"
            )

    @property
    def num_candidates(self) -> int:
        return self.candidate_item_ids.numel()

    @property
    def history_len(self) -> int:
        return self.history.num_tokens

    def with_candidates(self, first: int, last: int, as_targets: bool) -> JaggedSequences:
        """[history ; candidates first..last-1] as one sequence; ``as_targets`` sets num_targets (else causal)."""
        history, count = self.history, last - first
        zeros = self.candidate_item_ids.new_zeros(count)
        stamps = self.candidate_timestamps[first:last]
        return JaggedSequences(
            item_ids=torch.cat([history.item_ids, self.candidate_item_ids[first:last]]),
            timestamps=torch.cat([history.timestamps, stamps]),
            query_timestamps=torch.cat([history.query_timestamps, stamps]),
            offsets=history.offsets.new_tensor([0, self.history_len + count]),
            num_targets=history.offsets.new_tensor([count]) if as_targets else None,
            action_ids=torch.cat([_or_zeros(history.action_ids, history.item_ids), zeros]),
            context_ids=torch.cat([_or_zeros(history.context_ids, history.item_ids), zeros]),
        )

    def candidates_only(self, first: int, last: int) -> JaggedSequences:
        """Candidates first..last-1 as the token batch a cached pass embeds (offsets [0, count])."""
        stamps = self.candidate_timestamps[first:last]
        return JaggedSequences(
            item_ids=self.candidate_item_ids[first:last],
            timestamps=stamps,
            query_timestamps=stamps,
            offsets=self.history.offsets.new_tensor([0, last - first]),
        )


def _or_zeros(ids: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if ids is None else ids


def score_candidates(
    model: SequentialRankingModel,
    request: RankingRequest,
    path: ScoringPath,
    microbatch_size: int = 1,
    cached_backend: CachedAttentionBackend = "auto",
) -> Tensor:
    """[m, K] task logits of every candidate of ``request`` by one of the three paths."""
    _check_model(model)
    if microbatch_size < 1:
        raise ValueError(f"microbatch_size must be >= 1; got {microbatch_size}")
    if path == "naive":
        return score_naive(model, request, range(request.num_candidates))
    if path == "batched":
        return score_batched(model, request, microbatch_size)
    if path == "cached":
        return score_cached(model, request, microbatch_size, cached_backend)
    raise ValueError(f"scoring path must be one of {', '.join(SCORING_PATHS)}; got {path!r}")


@torch.no_grad()
def score_naive(model: SequentialRankingModel, request: RankingRequest, candidates: range | list[int]) -> Tensor:
    """[len(candidates), K] logits, one causal forward pass over [history ; Phi'_i] per candidate i."""
    _check_model(model)
    row = torch.tensor([request.history_len], device=request.history.offsets.device)
    logits = [model(request.with_candidates(i, i + 1, as_targets=False), rows=row) for i in candidates]
    return torch.cat(logits) if logits else _no_logits(model, request)


@torch.no_grad()
def score_batched(model: SequentialRankingModel, request: RankingRequest, microbatch_size: int) -> Tensor:
    """[m, K] logits, one target-masked pass over [history ; b_m candidates] per microbatch (no cache)."""
    _check_model(model)
    logits = []
    for first, last in microbatches(request.num_candidates, microbatch_size):
        sequences = request.with_candidates(first, last, as_targets=True)
        rows = torch.arange(request.history_len, sequences.num_tokens, device=sequences.offsets.device)
        logits.append(model(sequences, rows=rows))
    return torch.cat(logits) if logits else _no_logits(model, request)


@torch.no_grad()
def score_cached(
    model: SequentialRankingModel, request: RankingRequest, microbatch_size: int,
    backend: CachedAttentionBackend = "auto",
) -> Tensor:
    """[m, K] logits: the history encoded once (per-layer K, V cached), then one cheap pass per microbatch."""
    _check_model(model)
    caches = encode_history(model, request.history)
    logits = [
        score_microbatch(model, caches, request, first, last, backend)
        for first, last in microbatches(request.num_candidates, microbatch_size)
    ]
    return torch.cat(logits) if logits else _no_logits(model, request)


def microbatches(num_candidates: int, microbatch_size: int) -> list[tuple[int, int]]:
    """[(first, last)] candidate ranges of at most ``microbatch_size``; the last may be shorter."""
    return [(first, min(first + microbatch_size, num_candidates)) for first in range(0, num_candidates, microbatch_size)]


@torch.no_grad()
def encode_history(model: SequentialRankingModel, history: JaggedSequences) -> list[CachedKeyValues]:
    """Run the encoder over the history alone and return each layer's cached K, V (Algorithm 1's kvCache)."""
    _check_model(model)
    backbone = model.backbone
    x = backbone.input_layer(backbone.embedding(history), history.offsets)  # [n, d]
    caches = []
    for layer in _layers(backbone.encoder):
        x, cache = _history_layer(layer, x, history)
        caches.append(cache)
    return caches


@torch.no_grad()
def score_microbatch(
    model: SequentialRankingModel, caches: list[CachedKeyValues], request: RankingRequest, first: int, last: int,
    backend: CachedAttentionBackend = "auto",
) -> Tensor:
    """[last - first, K] logits of candidates first..last-1 against the cached history."""
    backbone = model.backbone
    candidates = request.candidates_only(first, last)
    positions = torch.full((last - first,), request.history_len, device=candidates.offsets.device)
    x = backbone.input_layer.at_positions(backbone.embedding(candidates), positions)  # [b, d], all at position n
    for layer, cache in zip(_layers(backbone.encoder), caches, strict=True):
        x = _candidate_layer(layer, x, cache, candidates, backend)
    if isinstance(backbone.encoder, SASRecEncoder):
        x = backbone.encoder.final_norm(x)
    return model.heads(x)


def _history_layer(layer: nn.Module, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
    """One layer over the history (plain causal: it never sees candidates); returns its output and K, V."""
    if isinstance(layer, HSTULayer):
        u, v, q, k = layer.split_streams(x)
        cache = CachedKeyValues(k, v, history.offsets, history.timestamps)
        return x + layer.transform(layer.attend(q, k, v, history), u), cache
    if isinstance(layer, SASRecLayer):
        k, v = _sasrec_keys_values(layer, x)
        return layer(x, history), CachedKeyValues(k, v, history.offsets, history.timestamps)
    raise TypeError(f"M-FALCON supports HSTU and SASRec layers; got {type(layer).__name__}")


def _candidate_layer(
    layer: nn.Module, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend
) -> Tensor:
    """One layer for b candidate tokens only, attending over the cached history and themselves."""
    if isinstance(layer, HSTULayer):
        u, v, q, k = layer.split_streams(x)  # Eq. 1 on b tokens: O(b d^2)
        attended = cached_target_attention(
            q, k, v, candidates.offsets, cache, max_seq_len=layer.max_seq_len, activation=layer.activation,
            scale=layer.scale, bias=layer.relative_bias.bias_for(candidates), backend=backend,
        )  # [b, H, dv]: O(b n d)
        return x + layer.transform(attended.reshape(x.shape[0], -1), u)  # Eq. 3 on b tokens
    if isinstance(layer, SASRecLayer):
        return _sasrec_candidates(layer, x, cache, candidates, backend)
    raise TypeError(f"M-FALCON supports HSTU and SASRec layers; got {type(layer).__name__}")


def _sasrec_keys_values(layer: SASRecLayer, x: Tensor) -> tuple[Tensor, Tensor]:
    tokens = x.shape[0]
    return (layer.key(x).reshape(tokens, layer.num_heads, layer.qk_dim),
            layer.value(x).reshape(tokens, layer.num_heads, layer.v_dim))


def _sasrec_candidates(
    layer: SASRecLayer, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend
) -> Tensor:
    """:class:`SASRecLayer`'s forward for candidate rows, with the history's K, V from the cache."""
    tokens = x.shape[0]
    normed = layer.attention_norm(x)
    q = layer.query(normed).reshape(tokens, layer.num_heads, layer.qk_dim)
    k, v = _sasrec_keys_values(layer, x)
    attended = cached_target_attention(
        q, k, v, candidates.offsets, cache, max_seq_len=layer.max_seq_len, activation="softmax",
        scale=1.0 / math.sqrt(layer.qk_dim), backend=backend,
    )
    x = normed + layer.dropout(layer.output(attended.reshape(tokens, layer.num_heads * layer.v_dim)))
    x = layer.ffn_norm(x)
    return x + layer.dropout(layer.ffn_out(layer.dropout(layer.ffn_in(x).relu())))


def _layers(encoder: nn.Module) -> list[nn.Module]:
    if not isinstance(encoder, (HSTUEncoder, SASRecEncoder)):
        raise TypeError(f"M-FALCON supports HSTU and SASRec encoders; got {type(encoder).__name__}")
    return list(encoder.layers)


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, SequentialRankingModel):
        raise TypeError(f"M-FALCON scores candidates with a ranking model (data.task 'ranking'); got {type(model).__name__}")
    if model.training:
        raise ValueError("call model.eval() before scoring candidates: dropout would randomise their scores")


def _no_logits(model: SequentialRankingModel, request: RankingRequest) -> Tensor:
    return torch.zeros(0, len(model.heads.heads), device=request.candidate_item_ids.device)


@dataclass(frozen=True)
class EncoderShape:
    """The sizes :func:`scoring_flops` needs (an HSTU encoder)."""

    num_layers: int
    embedding_dim: int  # d
    num_heads: int  # H
    qk_dim: int  # per head
    v_dim: int  # per head


def scoring_flops(path: ScoringPath, shape: EncoderShape, history_len: int, num_candidates: int, microbatch_size: int) -> float:
    """Encoder FLOPs to score m candidates after n history tokens (model/flops.py conventions).

    Per layer and token, f1 and f2 cost 2 d H (2 dqk + 2 dv) + 2 H dv d; each (query, key) pair
    a fused target-aware kernel computes costs 2 H (dqk + dv) (Q K^T and A V). Pairs per pass:

    * naive, per candidate: causal over n + 1 tokens, (n + 1)(n + 2) / 2;
    * batched, per microbatch of b: history causal n (n + 1) / 2, plus b (n + 1) for the targets;
    * cached: the history pass once (n (n + 1) / 2), then b (n + 1) per microbatch, with the
      linear layers on the b candidate tokens only: O(b d^2 + b n d) per pass (Appendix H).

    Embeddings and task heads are left out (the same per candidate on every path). The padded
    PyTorch reference computes full squares (it masks instead of skipping), so its real work on
    the uncached paths is higher than counted here.
    """
    d, h = shape.embedding_dim, shape.num_heads
    linear_per_token = 2.0 * d * h * (2 * shape.qk_dim + 2 * shape.v_dim) + 2.0 * h * shape.v_dim * d
    per_pair = 2.0 * h * (shape.qk_dim + shape.v_dim)
    n, m, b = history_len, num_candidates, microbatch_size
    history_pairs = n * (n + 1) / 2.0
    if path == "naive":
        per_layer = m * ((n + 1) * linear_per_token + (n + 1) * (n + 2) / 2.0 * per_pair)
    elif path == "batched":
        passes = math.ceil(m / b)
        per_layer = passes * (n * linear_per_token + history_pairs * per_pair) + m * (linear_per_token + (n + 1) * per_pair)
    elif path == "cached":
        per_layer = n * linear_per_token + history_pairs * per_pair + m * (linear_per_token + (n + 1) * per_pair)
    else:
        raise ValueError(f"scoring path must be one of {', '.join(SCORING_PATHS)}; got {path!r}")
    return shape.num_layers * per_layer
