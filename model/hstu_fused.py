"""HSTU's Eq. 1 and Eq. 3 as two fused autograd functions that keep only their inputs for backward.

This is the paper's Section 3.3 design: SiLU(f1(LayerNorm(X))) and f2(Dropout(LayerNorm(A V) * U))
each run as one operator whose backward recomputes what lies between input and output instead of
keeping it. Left to autograd, Eq. 1 keeps X, LayerNorm(X) and its statistics, f1's output before
SiLU and the SiLU output (the last is kept by the attention and the U gate anyway): 20d bytes per
token in bf16 at h d_v = h d_qk = d. Fused, it keeps X alone (2d); the SiLU output is the
function's result, which the attention and the gate hold. Eq. 3 left to autograd keeps A V,
LayerNorm(A V), its statistics and the gated product (6d); fused, A V alone (2d), U being part of
the SiLU output already kept. An HSTU layer thus keeps X, U V Q K and A V: 12d, under the
paper's 14d, which also keeps LayerNorm(X).

Backward re-runs the very same PyTorch operations (layer norm, the f1 matmul, SiLU; layer norm,
gate, dropout, f2) under the autocast state and, for dropout, the random-number state of the
forward, and differentiates them with autograd: gradients are bit-identical to the unfused
layer's. The price is the recomputation: one f1 and one f2 matmul more per training step
(12-30% of a CPU training step, which is why HSTULayer fuses only on CUDA by default). U, V, Q, K
come out as separate contiguous tensors (an exact copy), so the Triton kernels read Q, K, V in
place instead of keeping contiguous copies of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from model.dropout import dropout as apply_dropout


@dataclass(frozen=True)
class _AutocastState:
    """The autocast setting of one device type, captured in forward and restored for the recompute."""

    device_type: str
    enabled: bool
    dtype: torch.dtype

    @classmethod
    def current(cls, device: torch.device) -> "_AutocastState":
        return cls(device.type, torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))

    def restored(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)


def _recompute_input(tensor: Tensor | None, needs_grad: bool) -> Tensor | None:
    """A detached copy of a saved input to rebuild the graph on, requiring grad when backward needs it."""
    return None if tensor is None else tensor.detach().requires_grad_(needs_grad)


def _grads(outputs: Sequence[Tensor], grad_outputs: Sequence[Tensor], inputs: Sequence[Tensor | None]
           ) -> list[Tensor | None]:
    """Gradients of ``outputs`` w.r.t. those ``inputs`` that require grad; None for the others."""
    wanted = [tensor for tensor in inputs if tensor is not None and tensor.requires_grad]
    computed = iter(torch.autograd.grad(outputs, wanted, grad_outputs, allow_unused=True) if wanted else ())
    return [next(computed) if tensor is not None and tensor.requires_grad else None for tensor in inputs]


def _split_silu_projection(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    """SiLU(f1(LayerNorm(X))) exactly as the unfused layer computes it: [T, d] -> [T, H (2 d_v + 2 d_qk)]."""
    return F.silu(F.linear(F.layer_norm(x, x.shape[-1:], None, None, eps), weight, bias))


class _StreamProjection(torch.autograd.Function):
    """Eq. 1 fused: X -> U, V, Q, K, each a contiguous tensor; keeps X (and f1's parameters) only."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                sizes: tuple[int, ...]) -> tuple[Tensor, ...]:
        ctx.autocast = _AutocastState.current(x.device)
        ctx.eps, ctx.sizes = eps, sizes
        ctx.save_for_backward(x, weight, bias)
        streams = _split_silu_projection(x, weight, bias, eps).split(list(sizes), dim=-1)
        # Contiguous copies (exact): the attention kernels then read Q, K, V in place instead of
        # copying them, and no stream keeps the whole SiLU output alive through a view.
        return tuple(stream.contiguous() for stream in streams)

    @staticmethod
    def backward(ctx: Any, *grad_streams: Tensor | None) -> tuple[Tensor | None, ...]:
        x, weight, bias = ctx.saved_tensors
        inputs = [_recompute_input(tensor, needed) for tensor, needed in zip((x, weight, bias), ctx.needs_input_grad)]
        with torch.enable_grad(), ctx.autocast.restored():
            activated = _split_silu_projection(*inputs, ctx.eps)
        grad_activated = torch.cat([
            torch.zeros(x.shape[0], width, dtype=activated.dtype, device=activated.device) if grad is None else grad
            for grad, width in zip(grad_streams, ctx.sizes)
        ], dim=-1)
        return (*_grads([activated], [grad_activated], inputs), None, None)


class _GatedOutput(torch.autograd.Function):
    """Eq. 3 fused: f2(Dropout(LayerNorm(A V) * U)); keeps A V, U (and f2's parameters) only."""

    @staticmethod
    def forward(ctx: Any, attended: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                dropout: float, training: bool) -> Tensor:
        ctx.autocast = _AutocastState.current(attended.device)
        ctx.settings = (eps, dropout, training)
        ctx.rng = _RandomState.capture(attended.device) if training and dropout > 0.0 else None
        ctx.save_for_backward(attended, gate, weight, bias)
        return _gated_output(attended, gate, weight, bias, eps, dropout, training)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        inputs = [_recompute_input(tensor, needed) for tensor, needed in zip(saved, ctx.needs_input_grad)]
        with torch.random.fork_rng(devices=ctx.rng.cuda_devices if ctx.rng else [], enabled=ctx.rng is not None):
            if ctx.rng is not None:
                ctx.rng.restore()
            with torch.enable_grad(), ctx.autocast.restored():
                out = _gated_output(*inputs, *ctx.settings)
        return (*_grads([out], [grad_out], inputs), None, None, None)


def _gated_output(attended: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                  dropout: float, training: bool) -> Tensor:
    """f2(Dropout(LayerNorm(A V) * U)) exactly as the unfused layer computes it."""
    normed = F.layer_norm(attended, attended.shape[-1:], None, None, eps)
    return F.linear(apply_dropout(normed * gate, dropout, training), weight, bias)


@dataclass(frozen=True)
class _RandomState:
    """The generator state dropout draws from, so backward redraws the forward's mask."""

    cpu: Tensor
    cuda: Tensor | None
    cuda_devices: list[int]

    @classmethod
    def capture(cls, device: torch.device) -> "_RandomState":
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return cls(torch.get_rng_state(), torch.cuda.get_rng_state(index), [index])
        return cls(torch.get_rng_state(), None, [])

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_devices[0])


def stream_projection(x: Tensor, weight: Tensor, bias: Tensor | None, eps: float,
                      sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """Split(SiLU(f1(LayerNorm(X)))) into streams of ``sizes`` channels (Eq. 1), keeping only X for backward."""
    return _StreamProjection.apply(x, weight, bias, eps, tuple(sizes))


def gated_output(attended: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, *, eps: float,
                 dropout: float, training: bool) -> Tensor:
    """f2(Dropout(LayerNorm(A V) * U)) (Eq. 3), keeping only A V and U for backward."""
    return _GatedOutput.apply(attended, gate, weight, bias, eps, dropout, training)
