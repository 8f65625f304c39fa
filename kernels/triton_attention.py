"""Triton backend of :func:`kernels.attention.jagged_attention`: input checks and the autograd glue.

The forward kernel lives in kernels/triton_forward.py, the backward in kernels/triton_backward.py,
device helpers they share in kernels/triton_helpers.py and host launch planning in
kernels/triton_launch.py. For SiLU, autograd saves only q, k, v, offsets, num_targets, the
timestamps and the two small bias tables: the backward recomputes scores and rab^{p,t} tile by
tile (FlashAttention-style), so no O(N^2) tensor is kept between the passes. Softmax also keeps
the output and each row's log-sum-exp ([T, H] fp32), as FlashAttention-2 does.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from kernels.bias import RelativeAttentionBias
from kernels.triton_backward import attention_backward
from kernels.triton_forward import attention_forward
from kernels.triton_launch import INTERPRETER_CHUNK, WORK_CHUNK, AttentionProblem, build_work_tables

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_HEAD_DIM = 256  # larger tiles would not fit in registers with any config
INT32_LIMIT = 2**31


class _JaggedHstuAttention(torch.autograd.Function):
    """Autograd wrapper: tensors that may need gradients are explicit arguments."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, position_weights: Tensor | None,
                time_weights: Tensor | None, offsets: Tensor, num_targets: Tensor | None,
                query_timestamps: Tensor | None, key_timestamps: Tensor | None,
                settings: dict) -> Tensor:
        problem = AttentionProblem(
            q=q, k=k, v=v, offsets=offsets, num_targets=num_targets, position_weights=position_weights,
            time_weights=time_weights, query_timestamps=query_timestamps,
            key_timestamps=key_timestamps, **settings,
        )
        tables = None
        with _on_device(q):
            if q.shape[0] > 0:
                chunk = INTERPRETER_CHUNK if problem.interpreted else WORK_CHUNK
                tables = build_work_tables(offsets, q.shape[0], chunk)
            out, log_sum_exp = attention_forward(problem, tables)
        softmax_state = (out, log_sum_exp) if log_sum_exp is not None else (None, None)
        ctx.save_for_backward(q, k, v, position_weights, time_weights, offsets, num_targets,
                              query_timestamps, key_timestamps, *softmax_state)
        ctx.settings = settings
        ctx.tables = tables  # tiny int32 [pieces, 2] tables: reused instead of rebuilt
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (q, k, v, position_weights, time_weights, offsets, num_targets, query_timestamps, key_timestamps,
         out, log_sum_exp) = ctx.saved_tensors
        problem = AttentionProblem(
            q=q, k=k, v=v, offsets=offsets, num_targets=num_targets, position_weights=position_weights,
            time_weights=time_weights, query_timestamps=query_timestamps,
            key_timestamps=key_timestamps, **ctx.settings,
        )
        with _on_device(q):
            grads = attention_backward(
                problem, ctx.tables, aligned_contiguous(grad_out),
                position_grad=ctx.needs_input_grad[3], time_grad=ctx.needs_input_grad[4],
                out=out, log_sum_exp=log_sum_exp,
            )
        return (grads.q, grads.k, grads.v, grads.position_weights, grads.time_weights,
                None, None, None, None, None)


def aligned_contiguous(tensor: Tensor) -> Tensor:
    """``tensor`` contiguous and 16-byte aligned: the JIT compiles aligned pointers into the kernel
    variant whose K/V tiles are copied asynchronously, the one ``scaling bench kernels`` checks for
    spills; a view starting mid-allocation would get an unaligned variant, whose speed against the copy's is not
    measured (no GPU yet)."""
    tensor = tensor.contiguous()
    return tensor.clone() if tensor.data_ptr() % 16 else tensor


def _on_device(tensor: Tensor) -> contextlib.AbstractContextManager:
    """Make the tensor's GPU current: Triton launches on the current device, not the tensor's."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def triton_jagged_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    *,
    max_seq_len: int,
    activation: str = "silu",
    scale: float = 1.0,
    bias: RelativeAttentionBias | None = None,
    num_targets: Tensor | None = None,
    contextual_len: int = 0,
) -> Tensor:
    """[T, H, Dv] HSTU attention with the Triton kernels; arguments as kernels.attention.jagged_attention.

    Shapes and dtypes common to every backend were checked by the dispatcher; this adds what the
    kernels themselves need and makes every tensor contiguous in its last dimension.
    """
    if activation not in ("silu", "softmax"):
        raise ValueError(f"activation must be 'silu' or 'softmax'; got {activation!r}")
    _check_kernel_inputs(q, v, offsets, bias, num_targets)
    q, k, v = (aligned_contiguous(tensor) for tensor in (q, k, v))
    position_weights = time_weights = query_timestamps = key_timestamps = None
    bucket_fn = "log"
    if bias is not None:
        # The kernels read fp32 tables (kernels/triton_helpers.py gather_table): the same values
        # they converted to fp32 before; autograd casts the fp32 gradient back to the table's dtype.
        if bias.position_weights is not None:
            position_weights = bias.position_weights.to(torch.float32).contiguous()
        if bias.time_weights is not None:
            time_weights = bias.time_weights.to(torch.float32).contiguous()
            query_timestamps = bias.query_timestamps.contiguous()
            key_timestamps = bias.key_timestamps.contiguous()
        bucket_fn = bias.time_bucket_fn
    settings = {"bucket_fn": bucket_fn, "max_seq_len": max_seq_len, "scale": float(scale),
                "contextual_len": contextual_len, "activation": activation}
    return _JaggedHstuAttention.apply(
        q, k, v, position_weights, time_weights, offsets.to(torch.int64).contiguous(),
        None if num_targets is None else num_targets.contiguous(), query_timestamps, key_timestamps,
        settings,
    )


def _check_kernel_inputs(q: Tensor, v: Tensor, offsets: Tensor, bias, num_targets: Tensor | None) -> None:
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the triton attention backend supports float32, float16 and bfloat16; got {q.dtype}")
    if q.device.type != "cuda" and q.dtype == torch.bfloat16:
        raise ValueError(
            "the Triton CPU interpreter computes bfloat16 incorrectly; run bfloat16 on a CUDA device "
            "or use float16/float32 under TRITON_INTERPRET=1"
        )
    if max(q.shape[2], v.shape[2]) > MAX_HEAD_DIM:
        raise ValueError(f"the triton attention backend supports head dims up to {MAX_HEAD_DIM}; "
                         f"got Dqk={q.shape[2]}, Dv={v.shape[2]}")
    if q.shape[1] * max(q.shape[2], v.shape[2]) * max(q.shape[0], 1) >= INT32_LIMIT:
        # In-sequence offsets are int32 (row * H * D); only the sequence start is int64.
        longest = int((offsets[1:] - offsets[:-1]).max().item()) if offsets.numel() > 1 else 0
        if longest * q.shape[1] * max(q.shape[2], v.shape[2]) >= INT32_LIMIT:
            raise ValueError(f"a sequence of {longest} tokens x {q.shape[1]} heads exceeds the kernels' "
                             "int32 in-sequence offsets; split the sequence or use fewer heads")
    others = {"num_targets": num_targets}
    if bias is not None:
        others.update(position_weights=bias.position_weights, time_weights=bias.time_weights,
                      query_timestamps=bias.query_timestamps, key_timestamps=bias.key_timestamps)
        if bias.time_weights is not None and bias.time_bucket_fn not in ("log", "sqrt"):
            raise ValueError(f"time_bucket_fn must be 'log' or 'sqrt'; got {bias.time_bucket_fn!r}")
    for name, tensor in others.items():
        if tensor is not None and tensor.device != q.device:
            raise ValueError(f"{name} is on {tensor.device} but q is on {q.device}; move it to {q.device}")
    for name in ("num_targets", "query_timestamps", "key_timestamps"):
        tensor = others.get(name)
        if tensor is not None and tensor.is_floating_point():
            raise ValueError(f"{name} must be an integer tensor; got {tensor.dtype}")
