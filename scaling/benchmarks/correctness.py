"""Attention correctness on the device being benchmarked: a backend's output and gradients against an fp64 reference.

One seeded jagged problem with every feature the models use switched on (rab^{p,t} with log time
buckets, multiple targets, a contextual prefix; empty, single-token and partial-block sequences)
runs forward and backward through ``kernels.jagged_attention`` with the backend under test in
the dtype under test, and through the PyTorch reference in float64 on the same inputs. The error
of each tensor (out, dQ, dK, dV, d rab_p, d rab_t) is max |got - reference| / max(max |reference|, 1),
the measure the kernel tests use (tests/kernels/test_triton_attention.py), so a row reads the same here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Largest error accepted per dtype: fp32 differs from fp64 by summation order; bf16 rounds its
# inputs and P, dS before their matmuls (8 mantissa bits: about 8x fp16's 1e-2 of the kernel tests).
TOLERANCE = {"fp32": 2e-5, "bf16": 6e-2}
TIME_BUCKETS = 20
CONTEXTUAL_LEN = 2


@dataclass(frozen=True)
class CorrectnessCase:
    """What one correctness row checks."""

    backend: str  # 'triton' on CUDA; 'cpu' or 'reference' in CPU dry runs
    dtype: str  # 'fp32' or 'bf16'
    lengths: tuple[int, ...]  # the jagged batch
    heads: int
    head_dim: int  # d_qk = d_v
    device: str
    seed: int


def attention_errors(case: CorrectnessCase) -> dict[str, float]:
    """Each gradient's and the output's error against the fp64 reference (names: out, dq, dk, dv, d_rab_p, d_rab_t)."""
    import torch

    from kernels import jagged_attention

    problem = _problem(case)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[case.dtype]
    got = _run(problem, case.backend, dtype, torch.float32, jagged_attention)
    want = _run(problem, "reference", torch.float64, torch.float64, jagged_attention)
    return {name: _error(got[name], want[name]) for name in want}


def _error(got, want) -> float:
    if got is None:
        return math.inf  # a missing gradient fails any tolerance
    difference = (got.double() - want).abs().max().item() if want.numel() else 0.0
    return difference / max(want.abs().max().item() if want.numel() else 0.0, 1.0)


def _problem(case: CorrectnessCase) -> dict:
    """Seeded inputs in float64 on the device: q, k, v, upstream gradient, offsets, targets, rab weights and times."""
    import torch

    from kernels.jagged import offsets_from_lengths

    generator = torch.Generator().manual_seed(case.seed)
    rng = np.random.default_rng(case.seed)
    total, max_seq_len = sum(case.lengths), max(case.lengths)

    def normal(*shape: int, scale: float = 1.0):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(case.device)

    gaps = np.exp(rng.normal(6.0, 3.0, size=total)).astype(np.int64)  # heavy-tailed gaps between events (s)
    key_times = torch.from_numpy(1_700_000_000 + np.cumsum(gaps)).to(case.device)
    return {
        "q": normal(total, case.heads, case.head_dim), "k": normal(total, case.heads, case.head_dim),
        "v": normal(total, case.heads, case.head_dim), "grad_out": normal(total, case.heads, case.head_dim),
        "offsets": offsets_from_lengths(torch.tensor(case.lengths, dtype=torch.int64)).to(case.device),
        "num_targets": torch.tensor([int(rng.integers(0, n + 1)) for n in case.lengths], device=case.device),
        "rab_p": normal(2 * max_seq_len - 1, scale=0.5), "rab_t": normal(TIME_BUCKETS + 1, scale=0.5),
        "query_times": key_times + 60, "key_times": key_times, "max_seq_len": max_seq_len,
        "scale": case.head_dim ** -0.5,
    }


def _run(problem: dict, backend: str, dtype, bias_dtype, jagged_attention) -> dict:
    """Forward and backward of one backend on the problem cast to ``dtype``; output and gradients by name."""
    from kernels import RelativeAttentionBias

    leaves = {name: problem[name].to(dtype).requires_grad_() for name in ("q", "k", "v")}
    leaves.update({name: problem[name].to(bias_dtype).requires_grad_() for name in ("rab_p", "rab_t")})
    bias = RelativeAttentionBias(position_weights=leaves["rab_p"], time_weights=leaves["rab_t"],
                                 query_timestamps=problem["query_times"], key_timestamps=problem["key_times"])
    out = jagged_attention(leaves["q"], leaves["k"], leaves["v"], problem["offsets"],
                           max_seq_len=problem["max_seq_len"], scale=problem["scale"], bias=bias,
                           num_targets=problem["num_targets"], contextual_len=CONTEXTUAL_LEN, backend=backend)
    out.backward(problem["grad_out"].to(dtype))
    return {"out": out.detach(), **{f"d{name}" if len(name) == 1 else f"d_{name}": leaf.grad
                                    for name, leaf in leaves.items()}}
