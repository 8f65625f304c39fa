"""The Triton backend matches the padded reference: outputs and every gradient, over jagged shapes,
for HSTU's SiLU attention (every mask and bias option) and for softmax attention.

On CPU these run under TRITON_INTERPRET=1 (set by conftest.py) with the tiny fixed block config;
with CUDA they run the compiled, autotuned kernels.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attention_cases import BIASES, MASKS, draw_jagged_problem, leaves, make_problem, max_error, run
from kernels import RelativeAttentionBias, jagged_attention

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Max |triton - reference| over max(|reference|, 1). fp32 differs by summation order only; fp16
# additionally rounds P and dS to fp16 before their matmuls (as FlashAttention does) and rounds
# the stored results.
TOLERANCE = {torch.float32: 2e-5, torch.float16: 1e-2}
LENGTHS = [35, 0, 1, 17]  # empty and single-token sequences, several 16-row blocks, partial blocks


def assert_matches_reference(problem, dtype: torch.dtype) -> None:
    got = run(problem, "triton")
    want = run(problem, "reference", compute_dtype=torch.float64)
    assert set(got) == set(want) == {"out"} | {f"d{name}" for name in leaves(problem)}
    for name in want:
        assert got[name] is not None, f"{name} got no gradient"
        assert got[name].dtype == leaves(problem).get(name[1:], problem.v).dtype
        error = max_error(got[name], want[name])
        assert error <= TOLERANCE[dtype], f"{name}: error {error:.2e} > {TOLERANCE[dtype]:.0e}"


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("mask", MASKS)
def test_every_mask_and_bias_matches_reference_fp32(mask: str, bias: str) -> None:
    problem = make_problem(LENGTHS, mask=mask, bias=bias, dtype=torch.float32, device=DEVICE, seed=1, heads=1)
    assert_matches_reference(problem, torch.float32)


@pytest.mark.parametrize("mask", MASKS)
def test_fp16_matches_reference(mask: str) -> None:
    problem = make_problem(LENGTHS, mask=mask, bias="position+time-log", dtype=torch.float16,
                           device=DEVICE, seed=2, heads=1)
    assert_matches_reference(problem, torch.float16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("mask", MASKS)
def test_softmax_matches_reference(mask: str, dtype: torch.dtype) -> None:
    problem = make_problem(LENGTHS, mask=mask, bias="position+time-log", dtype=dtype, device=DEVICE,
                           seed=6, heads=1, activation="softmax")
    assert_matches_reference(problem, dtype)


@st.composite
def jagged_problems(draw):
    """Random batch: 1-4 sequences of 0-40 tokens, any masks, bias parts and activation, odd head dims."""
    return draw_jagged_problem(draw, max_sequences=4, max_heads=2, dims_qk=[8, 16, 24], dims_v=[8, 16, 40],
                               max_contextual=6, activations=["silu", "silu", "softmax"],
                               dtypes=[torch.float32, torch.float16])


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=jagged_problems())
def test_random_jagged_batches_match_reference(case: dict) -> None:
    dtype = case.pop("dtype")
    problem = make_problem(dtype=dtype, device=DEVICE, **case)
    assert_matches_reference(problem, dtype)


def test_gradients_only_for_inputs_that_require_them() -> None:
    problem = make_problem([9, 20], mask="causal", bias="position+time-log", dtype=torch.float32,
                           device=DEVICE, seed=3)
    problem.bias.time_weights.requires_grad_(False)
    problem.q.requires_grad_(False)
    out = jagged_attention(problem.q, problem.k, problem.v, problem.offsets, max_seq_len=problem.max_seq_len,
                           bias=problem.bias, backend="triton")
    out.backward(problem.grad_out)
    assert problem.q.grad is None and problem.bias.time_weights.grad is None
    assert problem.k.grad is not None and problem.bias.position_weights.grad is not None


@pytest.mark.skipif(DEVICE == "cuda", reason="the interpreter's bf16 limitation only applies on CPU")
def test_bf16_under_the_interpreter_is_refused() -> None:
    q = torch.randn(5, 1, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="bfloat16"):
        jagged_attention(q, q, q, torch.tensor([0, 5]), max_seq_len=8, backend="triton")


def test_integer_timestamps_are_required() -> None:
    q = torch.randn(5, 1, 16, device=DEVICE)
    stamps = torch.arange(5, device=DEVICE, dtype=torch.float32)
    bias = RelativeAttentionBias(position_weights=None, time_weights=torch.zeros(3, device=DEVICE),
                                 query_timestamps=stamps, key_timestamps=stamps)
    with pytest.raises(ValueError, match="integer"):
        jagged_attention(q, q, q, torch.tensor([0, 5], device=DEVICE), max_seq_len=8, bias=bias,
                         backend="triton")


def test_empty_batch_returns_empty_output_and_gradients() -> None:
    problem = make_problem([0, 0], mask="targets+context", bias="position", dtype=torch.float32,
                           device=DEVICE, seed=4)
    results = run(problem, "triton")
    assert results["out"].shape == (0, 2, 16)
    assert torch.equal(results["dposition_weights"], torch.zeros_like(results["dposition_weights"]))


def test_kernel_inputs_are_made_16_byte_aligned() -> None:
    from kernels.triton_attention import aligned_contiguous

    storage = torch.randn(101, 2, 16, dtype=torch.float16)
    view = storage[1:]  # contiguous, starting 64 bytes in: aligned
    assert aligned_contiguous(view).data_ptr() == view.data_ptr()
    odd = storage.view(-1)[1:513].view(16, 2, 16)  # contiguous, 2 bytes in: not aligned
    copied = aligned_contiguous(odd)
    assert copied.data_ptr() % 16 == 0 and torch.equal(copied, odd)
