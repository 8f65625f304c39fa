"""The encoder benchmark on CUDA (skipped elsewhere): the FlashAttention layouts agree with math, and a tiny run completes.

The yardstick for bf16 is PyTorch's own bf16 error: the math-padded layer in bf16 against the same
layer in fp32 on the same inputs. Both FlashAttention-2 layouts must stay within twice that error.
"""

from __future__ import annotations

import pytest
import torch

from scaling.benchmarks import encoder
from scaling.benchmarks.measure import median_milliseconds
from scaling.benchmarks.transformer_layer import JaggedLayout, TransformerLayer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

LENGTHS = [300, 17, 1024, 1, 64]


def outputs_and_grads(attention: str, dtype: torch.dtype, x: torch.Tensor, grad_out: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the same weights for every layout
    layer = TransformerLayer(128, 2, 64, 512, attention).to("cuda", dtype)
    leaf = x.to(dtype).detach().requires_grad_()
    out = layer(leaf, JaggedLayout.from_lengths(LENGTHS, "cuda"))
    out.backward(grad_out.to(dtype))
    return {"out": out.float(), "grad_x": leaf.grad.float(), "grad_qkv": layer.qkv.weight.grad.float()}


@pytest.mark.parametrize("attention", ["flash-jagged", "flash-padded"])
def test_flash_layouts_are_as_accurate_as_pytorch_bf16(attention: str) -> None:
    generator = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(sum(LENGTHS), 128, device="cuda", generator=generator).bfloat16()
    grad_out = torch.randn(sum(LENGTHS), 128, device="cuda", generator=generator).bfloat16()
    exact = outputs_and_grads("math-padded", torch.float32, x, grad_out)
    pytorch_bf16 = outputs_and_grads("math-padded", torch.bfloat16, x, grad_out)
    flash = outputs_and_grads(attention, torch.bfloat16, x, grad_out)
    for name in exact:
        flash_error = (flash[name] - exact[name]).abs().max().item()
        pytorch_error = (pytorch_bf16[name] - exact[name]).abs().max().item()
        assert flash_error <= 2 * pytorch_error + 1e-3, f"{name}: {flash_error:.2e} vs PyTorch bf16 {pytorch_error:.2e}"


def test_a_tiny_benchmark_runs_every_case_on_the_gpu() -> None:
    config = encoder.EncoderBenchConfig(lengths=(256,), batch_tokens=2048, alpha=1.6, layers=2, dtype="bf16",
                                        device="cuda", rab=False, transformer_attention="flash-jagged", seed=0)
    rows = encoder.run_encoder_benchmark(config, median_milliseconds)
    assert all(row["note"] == "" for row in rows), [row["note"] for row in rows]
    assert {row["impl"] for row in rows} == {"hstu-triton", "transformer-flash-jagged"}
    assert all(row["ms"] > 0 and row["tflops"] > 0 for row in rows)
    training = [row for row in rows if row["mode"] == "train"]
    assert all(row["act_B_tok"] > 0 and row["peak_B_tok"] > 0 for row in training)
    assert all(row["speedup"] > 0 for row in rows if row["impl"] == "hstu-triton")
