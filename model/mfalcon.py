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
  them. The history is encoded once, caching per layer its K and V; a microbatch then runs each
  layer on its b_m candidate tokens only (HSTU: U, Q, K, V of the candidates, attention over
  [cached history K, V ; each candidate's own K, V] by :func:`kernels.cached_target_attention`,
  then f2(Norm(AV) * U)): O(b_m d^2 + b_m n d) per pass (see :func:`scoring_flops`).

The cached path runs the encoder layer by layer and asks each layer for its two cached passes
(:class:`CachingLayer`): HSTU (pointwise or the softmax ablation, any rab), SASRec and
Transformer++ implement them with their own projection, norm and feed-forward code, and any
encoder whose layers do works here unchanged. All three paths need ``model.eval()`` (dropout
would randomise the scores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from kernels import CachedKeyValues
from kernels.attention import CachedAttentionBackend
from kernels.flops import causal_pairs, target_pairs
from kernels.jagged import target_positions
from model.flops import SequenceWorkload
from model.inputs import JaggedSequences
from model.recommender import SequentialRankingModel

ScoringPath = Literal["naive", "batched", "cached"]
SCORING_PATHS: tuple[str, ...] = ("naive", "batched", "cached")


@runtime_checkable
class CachingLayer(Protocol):
    """What the cached path needs of an encoder layer: its forward, split at the KV cache.

    Both methods must compute exactly what the layer's forward computes for those rows (the
    tests compare them with the uncached paths), reusing the layer's own code.
    """

    def forward_history(self, x: Tensor, history: JaggedSequences) -> tuple[Tensor, CachedKeyValues]:
        """The layer's output [Tn, d] over histories alone (plain causal) and the K, V candidates will read."""
        ...

    def forward_candidates(
        self, x: Tensor, cache: CachedKeyValues, candidates: JaggedSequences, backend: CachedAttentionBackend
    ) -> Tensor:
        """The layer's output [M, d] for candidate tokens only: each sees its cached history and itself,
        sitting at the position right after that history."""
        ...


@runtime_checkable
class CachingEncoder(Protocol):
    """What M-FALCON reads of an encoder: its layers in order, the norm after them, its FLOPs formula."""

    layers: Sequence[nn.Module]  # each a CachingLayer
    final_norm: nn.Module  # identity for an encoder without one (HSTU)

    def forward_flops(self, workload: SequenceWorkload) -> float: ...


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
    for layer in caching_layers(backbone.encoder):
        x, cache = layer.forward_history(x, history)
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
    positions = target_positions(request.history.offsets, candidates.offsets)  # all at position n
    x = backbone.input_layer.at_positions(backbone.embedding(candidates), positions)  # [b, d]
    for layer, cache in zip(caching_layers(backbone.encoder), caches, strict=True):
        x = layer.forward_candidates(x, cache, candidates, backend)
    return model.heads(backbone.encoder.final_norm(x))


def caching_layers(encoder: nn.Module) -> list[CachingLayer]:
    """The encoder's layers, or a TypeError naming what the cached path misses."""
    if not isinstance(encoder, CachingEncoder):
        raise TypeError(
            f"M-FALCON runs encoders with layers, final_norm and forward_flops (CachingEncoder in model/mfalcon.py); "
            f"{type(encoder).__name__} lacks some"
        )
    layers = list(encoder.layers)
    unable = sorted({type(layer).__name__ for layer in layers if not isinstance(layer, CachingLayer)})
    if unable:
        raise TypeError(
            f"M-FALCON's cached path needs layers with forward_history and forward_candidates (CachingLayer in "
            f"model/mfalcon.py); {', '.join(unable)} has none"
        )
    return layers


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, SequentialRankingModel):
        raise TypeError(f"M-FALCON scores candidates with a ranking model (data.task 'ranking'); got {type(model).__name__}")
    if model.training:
        raise ValueError("call model.eval() before scoring candidates: dropout would randomise their scores")


def _no_logits(model: SequentialRankingModel, request: RankingRequest) -> Tensor:
    return torch.zeros(0, len(model.heads.heads), device=request.candidate_item_ids.device)


def scoring_flops(
    path: ScoringPath, encoder: CachingEncoder, history_len: int, num_candidates: int, microbatch_size: int
) -> float:
    """Encoder FLOPs to score m candidates after n history tokens: the encoder's own formula on each path's work.

    Pairs (:mod:`kernels.flops`) and tokens per path, summed over its passes:

    * naive, per candidate: causal over n + 1 tokens, (n + 1)(n + 2) / 2 pairs;
    * batched, per microbatch of b: n + b tokens, the history causal n (n + 1) / 2 plus b (n + 1)
      for the targets (each sees the history and itself);
    * cached: the history pass once (n tokens, n (n + 1) / 2 pairs), then b tokens and b (n + 1)
      pairs per microbatch: the linear layers run on the candidates only, O(b d^2 + b n d) per pass
      (Appendix H).

    Every encoder's FLOPs are linear in tokens and pairs, so each path is one summed workload.
    Embeddings and task heads are left out (the same per candidate on every path). The padded
    PyTorch reference computes full squares (it masks instead of skipping), so its real work on
    the uncached paths is higher than counted here.
    """
    n, m, b = history_len, num_candidates, microbatch_size
    if path == "naive":  # m passes over [history ; one candidate]
        passes, tokens, pairs = m, m * (n + 1), m * causal_pairs(n + 1)
    elif path == "batched":  # ceil(m / b) passes over [history ; b candidates]
        passes = math.ceil(m / b)
        tokens, pairs = passes * n + m, passes * causal_pairs(n) + target_pairs(n, m)
    elif path == "cached":  # the history once, then ceil(m / b) passes over the candidates alone
        passes, tokens, pairs = 1 + math.ceil(m / b), n + m, causal_pairs(n) + target_pairs(n, m)
    else:
        raise ValueError(f"scoring path must be one of {', '.join(SCORING_PATHS)}; got {path!r}")
    workload = SequenceWorkload(num_sequences=passes, num_tokens=tokens, attention_pairs=pairs, num_scored=m,
                                items_per_scored=0)
    return float(encoder.forward_flops(workload))
