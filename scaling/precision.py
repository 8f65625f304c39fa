"""Mixed precision for the one training path: the dtype forward and loss run in, and fp16's loss scaling.

``train.precision`` picks one of

* ``fp32``: no autocast, plain ``backward`` and ``step``: exactly the full-precision path;
* ``bf16``: forward and loss under ``torch.autocast`` to bfloat16; no loss scaling (bf16 has
  fp32's exponent range, so gradients do not underflow);
* ``fp16``: autocast to float16 with dynamic loss scaling (``torch.amp.GradScaler``): the loss is
  multiplied before ``backward`` so small gradients survive fp16, the step unscales them and is
  skipped (the scale halved) when any is inf or NaN;
* ``auto``: bf16 on a CUDA device that supports it, fp32 otherwise, so CPU runs stay bit-identical
  to full-precision training unless bf16 is asked for.

The parameters stay fp32 (autocast casts a low-precision copy per op), so AdamW updates fp32
master weights and keeps fp32 moments. Losses are reduced in fp32 (the objectives cast logits to
float before the loss) and evaluation runs outside autocast, so metrics are fp32 as well.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Literal

import torch

from core.errors import UserError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision a run trains in: ``requested``, with ``auto`` made concrete for ``device``."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"config key 'train.precision': {torch.cuda.get_device_name(device)} does not support "
                        "bf16; use fp16 (with loss scaling) or fp32")
    return requested


class MixedPrecision:
    """How one run's steps run forward and loss, backpropagate and step the optimizer at its precision."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.name = resolve_precision(precision, device)
        self.device_type = device.type
        # Only fp16 needs its loss scaled; bf16 and fp32 step unscaled gradients.
        self.scaler = torch.amp.GradScaler(device.type) if self.name == "fp16" else None

    def autocast(self) -> AbstractContextManager:
        """The context forward and loss run in: autocast to bf16 or fp16, nothing for fp32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=AUTOCAST_DTYPES[self.name])

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (scaled by the current loss scale under fp16)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step on fp32 master weights; fp16 unscales first and skips a step with inf/NaN gradients."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
