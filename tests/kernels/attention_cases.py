"""Random jagged attention problems for backend-vs-reference tests, and how to compare results.

Time-bucket boundaries: the Triton kernel evaluates floor(ln|dt| / 0.301) as
log2|dt| * (ln 2 / 0.301) in float32, the reference as ln|dt| / 0.301; the two can disagree in the
last bit, so a gap whose exact value lies within a hair of a bucket boundary may be bucketed
differently (a genuine, harmless difference, not a bug). ``safe_timestamps`` therefore nudges
query timestamps until no gap of a sequence lies within ``BOUNDARY_MARGIN`` bucket units of a
boundary it could reach (exact hits such as perfect squares under sqrt are kept: both sides
compute them exactly). The check is done in float64 on the drawn integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor

from kernels import RelativeAttentionBias, jagged_attention
from kernels.jagged import offsets_from_lengths
from kernels.layout import build_attention_layout

BOUNDARY_MARGIN = 1e-4  # bucket units; float32 log/sqrt errors are below 1e-5 at these magnitudes
MASKS = ("causal", "targets", "context", "targets+context")
BIASES = ("none", "position", "time-log", "time-sqrt", "position+time-log")


def draw_jagged_problem(draw, *, max_sequences: int, max_heads: int, dims_qk: list[int], dims_v: list[int],
                        max_contextual: int, activations: list[str], dtypes: list[torch.dtype] | None = None) -> dict:
    """``make_problem``'s keywords for a random batch of 1..``max_sequences`` sequences of 0-40 tokens with any
    mask and bias parts (and a dtype from ``dtypes`` when given), drawn with hypothesis's ``draw``."""
    lengths = draw(st.lists(st.integers(0, 40), min_size=1, max_size=max_sequences))
    longest = max([*lengths, 1])
    case = dict(lengths=lengths, mask=draw(st.sampled_from(MASKS)), bias=draw(st.sampled_from(BIASES)))
    if dtypes is not None:
        case["dtype"] = draw(st.sampled_from(dtypes))
    return dict(
        case,
        heads=draw(st.integers(1, max_heads)),
        dim_qk=draw(st.sampled_from(dims_qk)),
        dim_v=draw(st.sampled_from(dims_v)),
        # Below the longest sequence the position index clamps, as in the reference.
        max_seq_len=draw(st.integers(max(1, longest // 2), longest + 8)),
        contextual_len=draw(st.integers(1, max_contextual)),
        num_buckets=draw(st.sampled_from([4, 20, 128])),
        activation=draw(st.sampled_from(activations)),
        seed=draw(st.integers(0, 2**16)),
    )


@dataclass
class Problem:
    """Inputs of one jagged_attention call, with leaf tensors that collect gradients."""

    q: Tensor  # [T, H, Dqk]
    k: Tensor  # [T, H, Dqk]
    v: Tensor  # [T, H, Dv]
    offsets: Tensor  # [B+1]
    grad_out: Tensor  # [T, H, Dv] upstream gradient
    max_seq_len: int
    scale: float
    num_targets: Tensor | None  # [B]
    contextual_len: int
    bias: RelativeAttentionBias | None
    activation: str = "silu"


def exact_buckets(gaps: np.ndarray, fn: str) -> np.ndarray:
    """Unrounded bucket coordinate of integer gaps, in float64."""
    magnitude = np.maximum(np.abs(gaps), 1).astype(np.float64)
    return np.log(magnitude) / 0.301 if fn == "log" else np.sqrt(magnitude)


def safe_timestamps(key_times: np.ndarray, query_times: np.ndarray, lengths: list[int], num_buckets: int,
                    fn: str) -> np.ndarray:
    """query_times nudged forward (1 s at a time) until no in-sequence gap sits on a bucket boundary."""
    query_times = query_times.copy()
    start = 0
    for length in lengths:
        rows = slice(start, start + length)
        for _ in range(200):
            gaps = query_times[rows, None] - key_times[None, rows]  # [L, L]
            coordinate = exact_buckets(gaps, fn)
            nearest = np.round(coordinate)
            risky = (np.abs(coordinate - nearest) < BOUNDARY_MARGIN) & (coordinate != nearest)
            risky &= (nearest >= 1) & (nearest <= num_buckets)
            bad_rows = np.nonzero(risky.any(axis=1))[0]
            if bad_rows.size == 0:
                break
            query_times[start + bad_rows] += 1
        else:
            raise AssertionError("could not draw timestamps away from bucket boundaries")
        start += length
    return query_times


def make_problem(lengths: list[int], *, mask: str, bias: str, dtype: torch.dtype, device: str, seed: int,
                 heads: int = 2, dim_qk: int = 16, dim_v: int = 16, max_seq_len: int | None = None,
                 contextual_len: int = 2, num_buckets: int = 20, activation: str = "silu") -> Problem:
    """A seeded problem; ``mask`` in MASKS and ``bias`` in BIASES choose the optional features."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    max_seq_len = max_seq_len or max([*lengths, 1])

    def leaf(*shape: int, scale: float = 1.0) -> Tensor:
        values = torch.randn(*shape, generator=generator) * scale
        return values.to(device=device, dtype=dtype).requires_grad_()

    q, k, v = leaf(total, heads, dim_qk), leaf(total, heads, dim_qk), leaf(total, heads, dim_v)
    grad_out = torch.randn(total, heads, dim_v, generator=generator).to(device=device, dtype=dtype)
    num_targets = None
    if "targets" in mask:
        num_targets = torch.tensor([int(rng.integers(0, length + 1)) for length in lengths], dtype=torch.int64)
        num_targets = num_targets.to(device)
    rab = None
    if bias != "none":
        fn = "sqrt" if bias.endswith("sqrt") else "log"
        rab = RelativeAttentionBias(
            position_weights=leaf(2 * max_seq_len - 1, scale=0.5) if "position" in bias else None,
            time_weights=leaf(num_buckets + 1, scale=0.5) if "time" in bias else None,
            time_bucket_fn=fn,
        )
        if "time" in bias:
            rab = _with_timestamps(rab, lengths, rng, num_buckets, fn, device)
    return Problem(
        q=q, k=k, v=v, offsets=offsets_from_lengths(torch.tensor(lengths, dtype=torch.int64)).to(device),
        grad_out=grad_out, max_seq_len=max_seq_len, scale=1.0 / math.sqrt(dim_qk), num_targets=num_targets,
        contextual_len=contextual_len if "context" in mask else 0, bias=rab, activation=activation,
    )


def _with_timestamps(rab: RelativeAttentionBias, lengths: list[int], rng: np.random.Generator,
                     num_buckets: int, fn: str, device: str) -> RelativeAttentionBias:
    # Realistic clock: epoch seconds, heavy-tailed gaps; a query's time is the next event's time.
    gaps = np.exp(rng.normal(6.0, 3.0, size=sum(lengths))).astype(np.int64)
    key_times = 1_700_000_000 + np.cumsum(gaps)
    query_times = key_times + np.exp(rng.normal(4.0, 2.0, size=key_times.shape)).astype(np.int64)
    query_times = safe_timestamps(key_times, query_times, lengths, num_buckets, fn)
    return RelativeAttentionBias(
        position_weights=rab.position_weights, time_weights=rab.time_weights,
        query_timestamps=torch.from_numpy(query_times).to(device),
        key_timestamps=torch.from_numpy(key_times).to(device), time_bucket_fn=fn,
    )


def leaves(problem: Problem) -> dict[str, Tensor]:
    """Every tensor jagged_attention should differentiate, by name."""
    found = {"q": problem.q, "k": problem.k, "v": problem.v}
    if problem.bias is not None and problem.bias.position_weights is not None:
        found["position_weights"] = problem.bias.position_weights
    if problem.bias is not None and problem.bias.time_weights is not None:
        found["time_weights"] = problem.bias.time_weights
    return found


def run(problem: Problem, backend: str, compute_dtype: torch.dtype | None = None,
        layout_options: dict | None = None) -> dict[str, Tensor]:
    """Output and gradients of every leaf; ``compute_dtype`` reruns on upcast copies of the inputs.

    ``layout_options`` (the 'cpu' backend): build the batch's layout with these
    ``build_attention_layout`` keywords (group cost, block rows) instead of the defaults.
    """
    originals = leaves(problem)
    inputs = {name: tensor.detach().to(compute_dtype or tensor.dtype).requires_grad_()
              for name, tensor in originals.items()}
    bias = problem.bias
    if bias is not None:
        bias = RelativeAttentionBias(
            position_weights=inputs.get("position_weights"), time_weights=inputs.get("time_weights"),
            query_timestamps=bias.query_timestamps, key_timestamps=bias.key_timestamps,
            time_bucket_fn=bias.time_bucket_fn,
        )
    layout = None
    if layout_options is not None:
        layout = build_attention_layout(
            problem.offsets, max_seq_len=problem.max_seq_len, num_heads=problem.q.shape[1], bias=bias,
            num_targets=problem.num_targets, contextual_len=problem.contextual_len, **layout_options,
        )
    out = jagged_attention(
        inputs["q"], inputs["k"], inputs["v"], problem.offsets, max_seq_len=problem.max_seq_len,
        scale=problem.scale, bias=bias, num_targets=problem.num_targets,
        contextual_len=problem.contextual_len, activation=problem.activation, backend=backend, layout=layout,
    )
    if out.requires_grad:
        out.backward(problem.grad_out.to(out.dtype))
    elif out.numel() == 0:  # the reference returns a constant for an empty batch
        for tensor in inputs.values():
            tensor.grad = torch.zeros_like(tensor)
    results = {"out": out.detach()}
    results.update({f"d{name}": tensor.grad for name, tensor in inputs.items()})
    return results


def max_error(got: Tensor, want: Tensor) -> float:
    """Largest absolute difference, relative to the reference's largest magnitude (at least 1)."""
    if want.numel() == 0:
        return 0.0
    scale = max(want.abs().max().item(), 1.0)
    return (got.double() - want.double()).abs().max().item() / scale
