"""bf16 accuracy of the compiled Triton kernels at realistic shapes (CUDA only; skipped elsewhere).

The yardstick is PyTorch's own bf16 error: the padded reference run in bf16, compared with the
same reference in fp32 on the same (bf16-representable) inputs. The kernel, which accumulates
in fp32, must stay within twice that error for the output and every gradient.
"""

from __future__ import annotations

import pytest
import torch

from attention_cases import make_problem, max_error, run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# (lengths, heads, head dim, mask, bias, activation): a full long batch, a skewed jagged batch
# with every feature, many short sequences, and softmax attention.
SHAPES = [
    ([2048, 2048], 8, 64, "causal", "none", "silu"),
    ([1500, 17, 1024, 333, 1, 0, 700], 4, 64, "targets+context", "position+time-log", "silu"),
    ([200] * 24 + [37, 5], 2, 128, "targets", "position+time-sqrt", "silu"),
    ([1024, 700, 3], 4, 64, "causal", "position+time-log", "softmax"),
]


@pytest.mark.parametrize("lengths, heads, dim, mask, bias, activation", SHAPES)
def test_bf16_error_is_within_twice_pytorch_bf16_error(lengths, heads, dim, mask, bias, activation) -> None:
    problem = make_problem(lengths, mask=mask, bias=bias, dtype=torch.bfloat16, device="cuda", seed=5,
                           heads=heads, dim_qk=dim, dim_v=dim, max_seq_len=max(lengths), num_buckets=128,
                           activation=activation)
    exact = run(problem, "reference", compute_dtype=torch.float32)
    kernel = run(problem, "triton")
    pytorch_bf16 = run(problem, "reference")
    for name in exact:
        kernel_error = max_error(kernel[name], exact[name])
        pytorch_error = max_error(pytorch_bf16[name], exact[name])
        assert kernel_error <= 2 * pytorch_error + 1e-6, (
            f"{name}: kernel bf16 error {kernel_error:.2e} > 2 x PyTorch bf16 error {pytorch_error:.2e}"
        )
