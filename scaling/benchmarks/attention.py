"""The attention micro-benchmark: HSTU jagged attention against PyTorch's FlashAttention SDPA.

For every length n it times two batches holding the same number of tokens: a full batch
(B sequences of exactly n tokens) and a jagged batch whose lengths follow a skewed distribution
clipped to n (see :func:`draw_jagged_lengths`). HSTU runs on the jagged values directly; SDPA
runs causal FlashAttention on the batch right-padded to its longest sequence, which is what a
padded Transformer pays. Both sides are credited with the same *useful* FLOPs
(:func:`attention_flops`), so padding waste shows up as a lower TFLOP/s.

Timing uses ``triton.testing.do_bench`` (median of repeated runs after warm-up, L2 flushed
between runs); forward is timed under ``torch.no_grad``, forward+backward as one closure that
calls ``backward`` on a fixed upstream gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scaling.benchmarks.measure import Timer, median_milliseconds, torch_dtype

# Backward = 2.5 x forward: it runs five n^2 d matmuls (S and dP recomputed, dV, dK, dQ) against
# the forward's two (FlashAttention-2 paper, Section 4; its benchmarks use the same factor).
FORWARD_BACKWARD_FACTOR = 3.5
# Skewed lengths: median n / 8 with a lognormal tail (sigma 1), so most histories are short and
# a few percent reach the cap n, the shape of user-history lengths in recommendation logs.
JAGGED_MEDIAN_FRACTION = 1 / 8
JAGGED_SIGMA = 1.0
RESULT_COLUMNS = ("n", "batch", "sequences", "tokens", "impl", "dtype", "fwd_ms", "fwd_tflops",
                  "fwd_bwd_ms", "fwd_bwd_tflops", "note")


def attention_flops(lengths: Sequence[int], heads: int, dim_qk: int, dim_v: int, *, backward: bool) -> float:
    """Useful causal-attention FLOPs of a batch, counted once the way FlashAttention benchmarks do.

    forward = sum_i n_i^2 * heads * 2 * (dim_qk + dim_v) / 2: a multiply-add (2 FLOPs) per
    (query, key, dim) for S = Q K^T (dim_qk) and for O = P V (dim_v), halved because causal
    attention needs only the lower triangle (the diagonal's extra half is not counted). With
    dim_qk = dim_v = d and equal lengths this is FlashAttention's 4 * B * n^2 * h * d / 2. (The
    model FLOPs count the n (n + 1) / 2 pairs the mask allows, kernels/flops.py; this throughput
    keeps FlashAttention's convention so its TFLOP/s compare with published FlashAttention numbers.)
    forward+backward = FORWARD_BACKWARD_FACTOR * forward. Element-wise work (SiLU, softmax,
    bias) is not counted.
    """
    sum_squares = float(sum(int(length) ** 2 for length in lengths))
    forward = sum_squares * heads * 2 * (dim_qk + dim_v) / 2
    return forward * FORWARD_BACKWARD_FACTOR if backward else forward


def tflops_per_second(flops: float, milliseconds: float | None) -> float | None:
    """Throughput in TFLOP/s, or None when there is no timing."""
    if milliseconds is None or milliseconds <= 0:
        return None
    return flops / (milliseconds * 1e-3) / 1e12


def draw_jagged_lengths(max_len: int, total_tokens: int, seed: int) -> list[int]:
    """Seeded lognormal lengths in [1, max_len] summing exactly to ``total_tokens``.

    Lengths are drawn i.i.d. as round(exp(N(ln(max_len * JAGGED_MEDIAN_FRACTION), JAGGED_SIGMA)))
    clipped to [1, max_len] until the total is reached; the last one is cut to fit.
    """
    if max_len < 1 or total_tokens < 1:
        raise ValueError(f"max_len and total_tokens must be >= 1; got {max_len}, {total_tokens}")
    rng = np.random.default_rng(seed)
    mu = math.log(max(max_len * JAGGED_MEDIAN_FRACTION, 1.0))
    lengths: list[int] = []
    remaining = total_tokens
    while remaining > 0:
        draws = np.clip(np.rint(rng.lognormal(mu, JAGGED_SIGMA, size=256)), 1, max_len).astype(int)
        for length in draws.tolist():
            length = min(length, remaining)
            lengths.append(length)
            remaining -= length
            if remaining == 0:
                break
    return lengths


def batch_lengths(n: int, tokens: int, kind: str, seed: int) -> list[int]:
    """Lengths of the 'full' or 'jagged' batch for length n; both hold max(1, tokens // n) * n tokens."""
    sequences = max(1, tokens // n)
    if kind == "full":
        return [n] * sequences
    if kind == "jagged":
        return draw_jagged_lengths(n, sequences * n, seed + n)
    raise ValueError(f"batch kind must be 'full' or 'jagged'; got {kind!r}")


@dataclass(frozen=True)
class AttentionBenchConfig:
    """What `scaling bench attention` times."""

    lengths: tuple[int, ...]  # the n values (longest sequence per row)
    heads: int  # attention heads h
    head_dim: int  # d_qk = d_v
    tokens: int  # tokens per batch (before rounding to a multiple of n)
    dtype: str  # 'bf16' or 'fp16'
    device: str  # a CUDA device, e.g. 'cuda' or 'cuda:1'
    backend: str  # HSTU implementation: 'triton' or 'reference'
    rab: str  # relative bias timed with HSTU: 'none', 'position', 'time' or 'both'
    seed: int  # seeds the jagged lengths and the random inputs


def run_attention_benchmark(config: AttentionBenchConfig, progress: Callable[[dict[str, object]], None] | None = None,
                            timer: Timer | None = None) -> list[dict[str, object]]:
    """Time every (n, batch kind, implementation) and return one row per combination.

    ``timer`` runs a closure and returns its milliseconds (default: :func:`median_milliseconds`);
    a dry run passes one that runs it once and returns None (no time, no TFLOP/s).
    """
    import torch

    torch.manual_seed(config.seed)
    rows = []
    for n in config.lengths:
        for kind in ("full", "jagged"):
            lengths = batch_lengths(n, config.tokens, kind, config.seed)
            for impl in (f"hstu-{config.backend}", "sdpa-flash"):
                row = _time_case(config, n, kind, lengths, impl, timer or _milliseconds)
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


def _time_case(config: AttentionBenchConfig, n: int, kind: str, lengths: list[int], impl: str,
               timer: Timer) -> dict[str, object]:
    import torch

    row: dict[str, object] = {"n": n, "batch": kind, "sequences": len(lengths), "tokens": sum(lengths),
                              "impl": impl, "dtype": config.dtype, "note": ""}
    try:
        forward, forward_backward = (_sdpa_closures if impl == "sdpa-flash" else _hstu_closures)(config, lengths)
        row["fwd_ms"] = timer(forward)
        row["fwd_bwd_ms"] = timer(forward_backward)
    except torch.cuda.OutOfMemoryError:
        row["note"] = "out of memory"
    except RuntimeError as error:  # e.g. no flash kernel for this dtype/device
        row["note"] = str(error).splitlines()[0][:80]
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    flops = attention_flops(lengths, config.heads, config.head_dim, config.head_dim, backward=False)
    row["fwd_tflops"] = tflops_per_second(flops, row.get("fwd_ms"))
    row["fwd_bwd_tflops"] = tflops_per_second(flops * FORWARD_BACKWARD_FACTOR, row.get("fwd_bwd_ms"))
    return row


def _milliseconds(fn: Callable[[], None]) -> float:
    return median_milliseconds(fn)


def _hstu_closures(config: AttentionBenchConfig, lengths: list[int]):
    """(forward, forward+backward) closures for HSTU attention on the jagged batch."""
    import torch

    from kernels import jagged_attention
    from kernels.jagged import offsets_from_lengths

    device, dtype = torch.device(config.device), torch_dtype(config.dtype)
    total, n = sum(lengths), max(lengths)
    q, k, v = (torch.randn(total, config.heads, config.head_dim, device=device, dtype=dtype) for _ in range(3))
    offsets = offsets_from_lengths(torch.tensor(lengths)).to(device)
    bias = _relative_bias(config.rab, total, n, device)
    grad_out = torch.randn_like(v)

    def attend(q_in, k_in, v_in):
        return jagged_attention(q_in, k_in, v_in, offsets, max_seq_len=n, scale=config.head_dim ** -0.5,
                                bias=bias, backend=config.backend)

    return _closures(attend, (q, k, v), grad_out)


def _relative_bias(rab: str, total: int, n: int, device):
    import torch

    from kernels import RelativeAttentionBias

    if rab == "none":
        return None
    position = torch.randn(2 * n - 1, device=device) if rab in ("position", "both") else None
    if rab not in ("time", "both"):
        return RelativeAttentionBias(position_weights=position, time_weights=None)
    key_times = 1_700_000_000 + torch.cumsum(torch.randint(1, 100_000, (total,), device=device), 0)
    return RelativeAttentionBias(position_weights=position, time_weights=torch.randn(129, device=device),
                                 query_timestamps=key_times + 60, key_timestamps=key_times)


def _sdpa_closures(config: AttentionBenchConfig, lengths: list[int]):
    """(forward, forward+backward) closures for causal FlashAttention SDPA on the padded batch."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device, dtype = torch.device(config.device), torch_dtype(config.dtype)
    shape = (len(lengths), config.heads, max(lengths), config.head_dim)  # [B, H, N, D], right-padded
    q, k, v = (torch.randn(shape, device=device, dtype=dtype) for _ in range(3))
    grad_out = torch.randn_like(v)

    def attend(q_in, k_in, v_in):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q_in, k_in, v_in, is_causal=True)

    return _closures(attend, (q, k, v), grad_out)


def _closures(attend, inputs, grad_out):
    import torch

    def forward() -> None:
        with torch.no_grad():
            attend(*inputs)

    leaves = [tensor.detach().requires_grad_() for tensor in inputs]

    def forward_backward() -> None:
        for leaf in leaves:
            leaf.grad = None
        attend(*leaves).backward(grad_out)

    return forward, forward_backward
