"""Kernel tests run the compiled Triton kernels on CUDA and Triton's CPU interpreter elsewhere.

Triton decides at decoration time whether ``@triton.jit`` builds an interpreted function, so
TRITON_INTERPRET must be set before any module importing triton is loaded; a conftest is
imported before the test modules of its folder.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
