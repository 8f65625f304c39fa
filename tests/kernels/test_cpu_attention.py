"""The CPU backend matches the padded reference: outputs and every gradient (q, k, v and the rab tables),
over jagged shapes cut into several length groups and row blocks, for SiLU and softmax attention with
every mask and bias option; and its dispatch, layout checks and FLOP count."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from attention_cases import BIASES, MASKS, draw_jagged_problem, leaves, make_problem, max_error, run
from kernels import RelativeAttentionBias, attention_layout, jagged_attention
from kernels.attention import resolve_backend
from kernels.flops import allowed_pairs, attention_flops
from kernels.jagged import offsets_from_lengths
from kernels.layout import build_attention_layout

# Max |cpu - reference| / max(|reference|, 1). fp32 differs from the fp64 reference by summation order; in
# fp64 only the rab tables' gradients do, because the reference accumulates them in fp32 (reference_backward.py).
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-6}
LENGTHS = [35, 0, 1, 17, 9, 9, 3, 30]  # empty and single-token sequences, equal lengths, several groups
# Small groups and blocks: several length groups, several row blocks per group, a prefix longer than a block.
SMALL_BLOCKS = {"group_cost_pairs": 64, "block_rows": 8}


def assert_matches_reference(problem, layout_options: dict | None = None) -> None:
    dtype = problem.q.dtype
    got = run(problem, "cpu", layout_options=layout_options)
    want = run(problem, "reference", compute_dtype=torch.float64)
    assert set(got) == set(want) == {"out"} | {f"d{name}" for name in leaves(problem)}
    for name in want:
        assert got[name] is not None, f"{name} got no gradient"
        assert got[name].dtype == leaves(problem).get(name[1:], problem.v).dtype
        error = max_error(got[name], want[name])
        assert error <= TOLERANCE[dtype], f"{name}: error {error:.2e} > {TOLERANCE[dtype]:.0e}"


@pytest.mark.parametrize("activation", ["silu", "softmax"])
@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("mask", MASKS)
def test_every_mask_and_bias_matches_reference(mask: str, bias: str, activation: str) -> None:
    problem = make_problem(LENGTHS, mask=mask, bias=bias, dtype=torch.float32, device="cpu", seed=1, heads=2,
                           contextual_len=11, activation=activation)
    assert_matches_reference(problem, SMALL_BLOCKS)


@pytest.mark.parametrize("activation", ["silu", "softmax"])
def test_default_layout_built_by_the_call_matches_reference(activation: str) -> None:
    problem = make_problem([130, 64, 65, 2], mask="targets+context", bias="position+time-log", dtype=torch.float32,
                           device="cpu", seed=2, heads=1, activation=activation)
    assert_matches_reference(problem)  # no layout passed: jagged_attention builds one (default groups, blocks)


def test_float64_matches_to_rounding() -> None:
    problem = make_problem(LENGTHS, mask="targets+context", bias="position+time-sqrt", dtype=torch.float64,
                           device="cpu", seed=3, heads=2)
    assert_matches_reference(problem, SMALL_BLOCKS)


@pytest.mark.parametrize("activation", ["silu", "softmax"])
def test_large_scores_still_mask_exactly(activation: str) -> None:
    """Masked pairs contribute exactly nothing even when allowed scores are in the thousands."""
    problem = make_problem([40, 23], mask="targets", bias="position+time-log", dtype=torch.float64, device="cpu",
                           seed=4, heads=1, activation=activation)
    with torch.no_grad():
        problem.q.mul_(60.0)
        problem.k.mul_(60.0)
    assert max(abs(problem.q).max().item(), abs(problem.k).max().item()) > 100
    assert_matches_reference(problem, SMALL_BLOCKS)


@st.composite
def jagged_problems(draw):
    """Random batch and layout: 1-6 sequences of 0-40 tokens, any mask, bias and activation, any group and block size."""
    case = draw_jagged_problem(draw, max_sequences=6, max_heads=3, dims_qk=[4, 8, 24], dims_v=[4, 16, 40],
                               max_contextual=12, activations=["silu", "softmax"])
    case["layout_options"] = {"group_cost_pairs": draw(st.sampled_from([1, 100, 10**9])),
                              "block_rows": draw(st.integers(1, 45))}
    return case


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=jagged_problems())
def test_random_jagged_batches_match_reference(case: dict) -> None:
    layout_options = case.pop("layout_options")
    problem = make_problem(dtype=torch.float32, device="cpu", **case)
    assert_matches_reference(problem, layout_options)


def test_one_layout_serves_several_calls() -> None:
    """What the encoder does: one layout per batch, every layer's call with its own q, k, v and tables."""
    first = make_problem(LENGTHS, mask="targets", bias="position+time-log", dtype=torch.float32, device="cpu", seed=5)
    second = make_problem(LENGTHS, mask="targets", bias="position+time-log", dtype=torch.float32, device="cpu", seed=6)
    layout = attention_layout(first.offsets, max_seq_len=first.max_seq_len, num_heads=2, bias=first.bias,
                              num_targets=first.num_targets, backend="cpu")
    for problem in (first, second):
        second_bias = RelativeAttentionBias(problem.bias.position_weights, problem.bias.time_weights,
                                            first.bias.query_timestamps, first.bias.key_timestamps)
        got = jagged_attention(problem.q, problem.k, problem.v, problem.offsets, max_seq_len=problem.max_seq_len,
                               bias=second_bias, num_targets=first.num_targets, backend="cpu", layout=layout)
        want = jagged_attention(problem.q, problem.k, problem.v, problem.offsets, max_seq_len=problem.max_seq_len,
                                bias=second_bias, num_targets=first.num_targets, backend="reference")
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_gradients_only_for_inputs_that_require_them() -> None:
    problem = make_problem([9, 20], mask="causal", bias="position+time-log", dtype=torch.float32, device="cpu", seed=3)
    problem.bias.time_weights.requires_grad_(False)
    problem.q.requires_grad_(False)
    out = jagged_attention(problem.q, problem.k, problem.v, problem.offsets, max_seq_len=problem.max_seq_len,
                           bias=problem.bias, backend="cpu")
    out.backward(problem.grad_out)
    assert problem.q.grad is None and problem.bias.time_weights.grad is None
    assert problem.k.grad is not None and problem.bias.position_weights.grad is not None


def test_empty_batch_returns_empty_output_and_gradients() -> None:
    problem = make_problem([0, 0], mask="targets+context", bias="position+time-log", dtype=torch.float32,
                           device="cpu", seed=4)
    got = run(problem, "cpu")
    assert got["out"].shape == (0, 2, 16)
    assert got["dq"].shape == (0, 2, 16) and torch.all(got["dposition_weights"] == 0)


def test_auto_means_cpu_on_cpu_and_every_backend_is_explicit() -> None:
    assert resolve_backend("auto", torch.device("cpu")) == "cpu"
    assert resolve_backend("auto", torch.device("cuda")) == "triton"
    assert resolve_backend("reference", torch.device("cpu")) == "reference"
    with pytest.raises(ValueError, match="needs CPU tensors"):
        resolve_backend("cpu", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown attention backend 'fast'.*'cpu'"):
        resolve_backend("fast", torch.device("cpu"))  # type: ignore[arg-type]


def test_only_the_cpu_backend_takes_a_layout() -> None:
    offsets = offsets_from_lengths(torch.tensor([3, 4]))
    assert attention_layout(offsets, max_seq_len=8, num_heads=1, backend="reference") is None
    layout = attention_layout(offsets, max_seq_len=8, num_heads=1, backend="auto")
    assert layout is not None and layout.num_tokens == 7
    q = torch.randn(7, 1, 4)
    with pytest.raises(ValueError, match="takes no layout"):
        jagged_attention(q, q, q, offsets, max_seq_len=8, backend="reference", layout=layout)


def test_a_layout_of_another_batch_or_configuration_is_refused() -> None:
    problem = make_problem([6, 5], mask="causal", bias="position+time-log", dtype=torch.float32, device="cpu", seed=7)
    q, k, v, offsets, bias = problem.q, problem.k, problem.v, problem.offsets, problem.bias

    def call(layout, **changes):
        options = dict(max_seq_len=problem.max_seq_len, bias=bias, backend="cpu", layout=layout) | changes
        return jagged_attention(q, k, v, offsets, **options)

    position_only = RelativeAttentionBias(bias.position_weights, None)
    layout = build_attention_layout(offsets, max_seq_len=problem.max_seq_len, num_heads=2, bias=position_only)
    with pytest.raises(ValueError, match="was built for"):
        call(layout)  # built without the time part
    one_head = build_attention_layout(offsets, max_seq_len=problem.max_seq_len, num_heads=1, bias=bias)
    with pytest.raises(ValueError, match="was built for"):
        call(one_head)
    other_batch = build_attention_layout(offsets_from_lengths(torch.tensor([5, 6])), max_seq_len=problem.max_seq_len,
                                         num_heads=2, bias=bias)
    with pytest.raises(ValueError, match="another batch"):
        call(other_batch)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(dtype) -> None:
    q = torch.randn(5, 1, 8).to(dtype).requires_grad_()
    offsets = torch.tensor([0, 2, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as a bf16 training forward calls it
        out = jagged_attention(q, q, q, offsets, max_seq_len=8, backend="cpu")
    want = jagged_attention(q.float(), q.float(), q.float(), offsets, max_seq_len=8, backend="cpu")
    assert out.dtype == dtype
    torch.testing.assert_close(out, want.to(dtype), rtol=0, atol=0)
    out.sum().backward()
    assert q.grad.dtype == dtype and torch.isfinite(q.grad.float()).all()
    with pytest.raises(ValueError, match="float32 and float64.*reference"):
        jagged_attention(q.to(torch.int32), q.to(torch.int32), q.to(torch.int32), offsets, max_seq_len=8, backend="cpu")


def test_flop_counter_counts_the_allowed_pairs_not_the_padded_blocks() -> None:
    problem = make_problem(LENGTHS, mask="targets+context", bias="position+time-log", dtype=torch.float32,
                           device="cpu", seed=8, heads=2, dim_qk=8, dim_v=16)
    pairs = allowed_pairs(problem.offsets, problem.num_targets, problem.contextual_len)
    with FlopCounterMode(display=False) as counter:
        out = jagged_attention(problem.q, problem.k, problem.v, problem.offsets, max_seq_len=problem.max_seq_len,
                               bias=problem.bias, num_targets=problem.num_targets,
                               contextual_len=problem.contextual_len, backend="cpu")
        out.backward(problem.grad_out)
    assert counter.get_total_flops() == 3 * attention_flops(pairs, 2, 8, 16)  # forward + 2 x forward backward
