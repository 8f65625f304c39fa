"""The one public attention operator: jagged causal attention with HSTU's pointwise SiLU or softmax.

Semantics (paper Eq. 2, per sequence of length L, per head)::

    S[i, j]   = scale * <q_i, k_j> + rab^{p,t}[i, j]
    silu:     A[i, j] = SiLU(S[i, j]) / max_seq_len      if allowed(i, j) else 0
    softmax:  A[i, :] = softmax over allowed j of S[i, :]
    out_i     = sum_j A[i, j] v_j

``allowed(i, j)`` combines three masks. With ``c = contextual_len`` prefix tokens and
``t = num_targets[b]`` candidate tokens at the end (history ends at ``h = L - t``):

* every token sees itself and every prefix token (j < c);
* history tokens (c <= i < h) see earlier history causally (c <= j <= i);
* target tokens (i >= h) see the whole history (c <= j < h) and themselves only: candidates never
  see each other, which is what lets M-FALCON score many candidates in one pass (Appendix H).

rab^{p,t} is shared by the heads of a layer. Its position part indexes
``position_weights[p_j - p_i + max_seq_len - 1]`` where ``p_i = min(i, h)``: every target sits at
the position right after the history, as if it were scored alone. Its time part indexes
``time_weights[bucket(query_timestamps[i] - key_timestamps[j])]``; a query's timestamp is the
time its prediction is requested (the next event's time), known at serving time.

Dividing by ``max_seq_len`` (the configured N, not the batch's longest sequence) keeps a
sequence's output independent of what it is batched with.

Backends: ``reference`` (padded PyTorch, the oracle, kernels/reference.py), ``cpu`` (length-grouped
batched matmuls over a per-batch :class:`~kernels.layout.AttentionLayout`, kernels/cpu_attention.py)
and ``triton`` (fused jagged kernels, kernels/triton_attention.py); ``auto`` is ``triton`` on CUDA
tensors, ``cpu`` on CPU tensors and ``reference`` on any other device. What depends only on the
batch (masks, length groups, time buckets) is built once by :func:`attention_layout` and passed to
every layer's call; a backend that needs none gets ``None`` from it.

:func:`cached_target_attention` is the same operator restricted to the target rows, reading the
history's keys and values from a cache (M-FALCON's encoder-level KV cache, Appendix H): since
history queries never see targets, a history can be encoded once and its K, V reused by every
microbatch of candidates.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import Tensor

from kernels.bias import RelativeAttentionBias
from kernels.cache import CachedKeyValues
from kernels.cpu_attention import cpu_jagged_attention  # imported eagerly: it registers the op's FLOP formulas
from kernels.layout import AttentionLayout, build_attention_layout
from kernels.reference import reference_cached_target_attention
from kernels.reference_op import reference_attention_op  # imported eagerly: it registers the op's FLOP formulas

AttentionBackend = Literal["auto", "reference", "cpu", "triton"]
BACKENDS = ("auto", "reference", "cpu", "triton")
CachedAttentionBackend = Literal["auto", "reference"]
AttentionActivation = Literal["silu", "softmax"]


def jagged_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    *,
    max_seq_len: int,
    activation: AttentionActivation = "silu",
    scale: float = 1.0,
    bias: RelativeAttentionBias | None = None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
    backend: AttentionBackend = "auto",
    layout: AttentionLayout | None = None,
) -> Tensor:
    """Attention over a jagged batch; returns [T, H, Dv].

    q, k: [T, H, Dqk]; v: [T, H, Dv]; offsets: [B+1] int64 with offsets[-1] == T;
    num_targets: [B] int64 or None. ``backend='auto'`` means Triton on CUDA tensors, the CPU
    backend on CPU tensors and the PyTorch reference elsewhere; naming a backend that cannot run
    raises instead of falling back. ``layout``: this batch's :func:`attention_layout`, built once
    and shared by the layers (the CPU backend builds one when it gets none; others take ``None``).
    """
    _check_inputs(q, k, v, offsets, max_seq_len, bias, num_targets, contextual_len, activation)
    chosen = resolve_backend(backend, q.device)
    if chosen != "cpu" and layout is not None:
        raise ValueError(f"attention backend {chosen!r} takes no layout; pass layout=None "
                         "(attention_layout gives None for it)")
    if chosen == "cpu":
        if layout is None:
            layout = build_attention_layout(offsets, max_seq_len=max_seq_len, num_heads=q.shape[1], bias=bias,
                                            num_targets=num_targets, contextual_len=contextual_len)
        _check_layout(layout, q, offsets, max_seq_len, bias, num_targets, contextual_len)
        return cpu_jagged_attention(q, k, v, layout, activation=activation, scale=scale, bias=bias)
    if chosen == "reference":
        # Run as a custom op so FLOP counters count jagged causal work, not the padded matrices.
        return reference_attention_op(
            q, k, v, offsets,
            bias.position_weights if bias is not None else None,
            bias.time_weights if bias is not None else None,
            bias.query_timestamps if bias is not None else None,
            bias.key_timestamps if bias is not None else None,
            num_targets, max_seq_len, activation, float(scale),
            bias.time_bucket_fn if bias is not None else "log",
            contextual_len,
        )
    if chosen == "triton":
        try:
            from kernels.triton_attention import triton_jagged_attention
        except ImportError as error:  # the Triton backend is optional at import time
            raise RuntimeError(f"attention backend 'triton' is unavailable: {error}") from error
        return triton_jagged_attention(
            q, k, v, offsets, max_seq_len=max_seq_len, activation=activation, scale=scale, bias=bias,
            num_targets=num_targets, contextual_len=contextual_len,
        )
    raise ValueError(_unknown_backend(backend))


def attention_layout(
    offsets: Tensor,
    *,
    max_seq_len: int,
    num_heads: int,
    bias: RelativeAttentionBias | None = None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
    backend: AttentionBackend = "auto",
) -> AttentionLayout | None:
    """What :func:`jagged_attention` with ``backend`` on ``offsets``' device needs from this batch, built once.

    Arguments as :func:`jagged_attention`, with ``num_heads`` the H of its q, k, v (``bias``'s
    weights only tell which parts are on and their sizes, so any layer's bias of the same
    configuration will do). The CPU backend gets its :class:`~kernels.layout.AttentionLayout`; the
    reference and Triton backends get ``None``: they derive masks and buckets inside their kernels.
    """
    chosen = resolve_backend(backend, offsets.device)
    if chosen == "cpu":
        return build_attention_layout(offsets, max_seq_len=max_seq_len, num_heads=num_heads, bias=bias,
                                      num_targets=num_targets, contextual_len=contextual_len)
    if chosen in ("reference", "triton"):
        return None
    raise ValueError(_unknown_backend(backend))


def cached_target_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    target_offsets: Tensor,
    history: CachedKeyValues,
    *,
    max_seq_len: int,
    activation: AttentionActivation = "silu",
    scale: float = 1.0,
    bias: RelativeAttentionBias | None = None,
    backend: CachedAttentionBackend = "auto",
) -> Tensor:
    """Attention of target (candidate) tokens over their cached history; returns [M, H, Dv].

    q, k: [M, H, Dqk] and v: [M, H, Dv] of the candidates only; ``target_offsets`` [B+1] gives
    user b the candidates ``target_offsets[b]:target_offsets[b+1]`` and ``history`` its cached
    history (same B). Row for row this equals the target rows of :func:`jagged_attention` over
    the sequences ``[history_b ; candidates_b]`` with ``num_targets[b]`` = the candidate count:
    each candidate sees every history token (the contextual prefix included, so
    ``contextual_len`` plays no part) and itself, never another candidate; for rab^{p,t} it sits
    at position ``h_b`` (the history length), ``bias.query_timestamps`` [M] are the candidates'
    request times and ``bias.key_timestamps`` [M] their own timestamps, history keys use
    ``history.timestamps``. Only a PyTorch reference exists ('auto' means it on every device).
    """
    _check_cached_inputs(q, k, v, target_offsets, history, max_seq_len, bias, activation)
    if backend not in ("auto", "reference"):
        raise ValueError(f"cached_target_attention has no {backend!r} backend; choose 'auto' or 'reference'")
    return reference_cached_target_attention(
        q, k, v, target_offsets, history, max_seq_len=max_seq_len, activation=activation, scale=scale, bias=bias,
    )


def _check_cached_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    target_offsets: Tensor,
    history: CachedKeyValues,
    max_seq_len: int,
    bias: RelativeAttentionBias | None,
    activation: str,
) -> None:
    if history.k.dim() != 3 or history.k.shape[1:] != q.shape[1:] or history.v.shape[1:] != v.shape[1:] \
            or history.v.shape[0] != history.k.shape[0]:
        raise ValueError(
            f"cached history k, v must be [Tn, H, Dqk], [Tn, H, Dv] matching the candidates' heads and widths; got "
            f"{tuple(history.k.shape)}, {tuple(history.v.shape)} for q {tuple(q.shape)}, v {tuple(v.shape)}"
        )
    if history.offsets.shape != target_offsets.shape:
        raise ValueError(
            f"history offsets {tuple(history.offsets.shape)} and target_offsets {tuple(target_offsets.shape)} "
            "must both be [B+1] for the same B users"
        )
    if history.k.dtype != q.dtype or history.k.device != q.device or history.offsets.device != q.device:
        raise ValueError(f"cached history is {history.k.dtype} on {history.k.device}; candidates are {q.dtype} on {q.device}")
    _check_inputs(q, k, v, target_offsets, max_seq_len, bias, None, 0, activation)
    if bias is not None and bias.time_weights is not None and (
        history.timestamps is None or history.timestamps.shape != history.k.shape[:1]
    ):
        raise ValueError(f"time_weights need history timestamps of shape [Tn] = [{history.k.shape[0]}]")


def resolve_backend(backend: AttentionBackend, device: torch.device) -> str:
    """The concrete backend ``backend`` names on ``device``, or a ValueError saying why it cannot run."""
    if backend == "auto":
        return {"cuda": "triton", "cpu": "cpu"}.get(device.type, "reference")
    if backend == "reference":
        return "reference"
    if backend == "cpu":
        if device.type != "cpu":
            raise ValueError(f"attention backend 'cpu' needs CPU tensors (got {device.type}); use 'auto' or 'triton'")
        return "cpu"
    if backend == "triton":
        interpreted = os.environ.get("TRITON_INTERPRET") == "1"
        if device.type != "cuda" and not interpreted:
            raise ValueError(
                f"attention backend 'triton' needs CUDA tensors (got {device.type}); "
                "set TRITON_INTERPRET=1 to run it under Triton's CPU interpreter"
            )
        return "triton"
    raise ValueError(_unknown_backend(backend))


def _unknown_backend(backend: object) -> str:
    return f"unknown attention backend {backend!r}; choose one of {', '.join(repr(name) for name in BACKENDS)}"


def _check_layout(
    layout: AttentionLayout,
    q: Tensor,
    offsets: Tensor,
    max_seq_len: int,
    bias: RelativeAttentionBias | None,
    num_targets: Tensor | None,
    contextual_len: int,
) -> None:
    """A layout built for another batch or another bias configuration would silently mis-attend: refuse it."""
    with_time = bias is not None and bias.time_weights is not None
    built_for = (layout.num_tokens, layout.num_heads, layout.max_seq_len, layout.contextual_len, layout.with_position,
                 layout.num_time_buckets, layout.time_bucket_fn if with_time else None)
    called_with = (q.shape[0], q.shape[1], max_seq_len, contextual_len,
                   bias is not None and bias.position_weights is not None,
                   int(bias.time_weights.numel()) - 1 if with_time else None, bias.time_bucket_fn if with_time else None)
    if built_for != called_with:
        raise ValueError(
            "the attention layout was built for (tokens, heads, max_seq_len, contextual_len, position part, time "
            f"buckets, bucket fn) = {built_for}, but the call has {called_with}; build it with attention_layout(...) "
            "from the same batch and attention configuration"
        )
    same = [_same(layout.offsets, offsets), _same(layout.num_targets, num_targets)]
    if with_time:
        same += [_same(layout.query_timestamps, bias.query_timestamps), _same(layout.key_timestamps, bias.key_timestamps)]
    if not all(same):
        raise ValueError("the attention layout was built for another batch (offsets, num_targets or timestamps differ)")


def _same(built: Tensor | None, given: Tensor | None) -> bool:
    if built is None or given is None:
        return built is given
    return built is given or (built.shape == given.shape and bool(torch.equal(built, given.to(built.dtype))))


def _check_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    max_seq_len: int,
    bias: RelativeAttentionBias | None,
    num_targets: Tensor | None,
    contextual_len: int,
    activation: str,
) -> None:
    if q.dim() != 3 or k.shape != q.shape or v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        raise ValueError(
            f"jagged_attention expects q, k [T, H, Dqk] and v [T, H, Dv]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"offsets must be a 1-D integer tensor [B+1]; got {offsets.dtype} {tuple(offsets.shape)}")
    if offsets.device != q.device:
        raise ValueError(f"offsets are on {offsets.device} but q is on {q.device}")
    if activation not in ("silu", "softmax"):
        raise ValueError(f"activation must be 'silu' or 'softmax'; got {activation!r}")
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be >= 1; got {max_seq_len}")
    if contextual_len < 0:
        raise ValueError(f"contextual_len must be >= 0; got {contextual_len}")
    if num_targets is not None and num_targets.shape != (offsets.numel() - 1,):
        raise ValueError(f"num_targets must have shape [B] = [{offsets.numel() - 1}]; got {tuple(num_targets.shape)}")
    if bias is None:
        return
    if bias.position_weights is not None and bias.position_weights.shape != (2 * max_seq_len - 1,):
        raise ValueError(
            f"position_weights must have shape [2 * max_seq_len - 1] = [{2 * max_seq_len - 1}]; "
            f"got {tuple(bias.position_weights.shape)}"
        )
    if bias.time_weights is not None:
        if bias.time_weights.dim() != 1 or bias.time_weights.numel() < 1:
            raise ValueError(f"time_weights must be 1-D [num_buckets + 1]; got {tuple(bias.time_weights.shape)}")
        for name in ("query_timestamps", "key_timestamps"):
            stamps = getattr(bias, name)
            if stamps is None or stamps.shape != q.shape[:1]:
                raise ValueError(f"time_weights need {name} of shape [T] = [{q.shape[0]}]")
