"""Model FLOPs utilisation: a trial's achieved training FLOP/s against the peak of the device it trained on.

Achieved FLOP/s is the run's analytic training FLOPs (``scaling/flops.py``: 3 x the model's
forward formula, the count the scaling laws use) over the wall time of its training passes
(evaluation excluded, data loading inside the passes included). MFU is that over the device's
peak at the run's precision (PaLM's definition, Appendix B: model FLOPs, not hardware FLOPs, so
recomputation and padding do not count as useful work):

* on a CUDA GPU the vendor's dense peak (no 2:4 sparsity) from :data:`GPU_PEAKS`: tensor-core
  bf16/fp16, and plain fp32 (CUDA cores; torch leaves TF32 matmuls off by default); a GPU not in
  the table gets a measured matmul peak like the CPU;
* on the CPU (or an unlisted GPU) a measured peak: the best of a few ``n x n x n`` matmuls in the
  run's dtype at torch's current thread count (:func:`matmul_peak_flops`, also the peak
  ``scaling bench train`` reports).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import torch

from scaling.precision import AUTOCAST_DTYPES

MATMUL_SIZE = 1024  # n of the n x n x n matmul that measures a peak
MATMUL_REPEATS = 10  # the peak is the best of these (after one untimed warm-up)
TRIAL_MATMUL_REPEATS = 5  # fewer in every trial: about 0.1-0.2 s at the end of a CPU run

# Dense peak TFLOP/s per (device, precision), from the vendors' datasheets (without sparsity).
# Matched against torch.cuda.get_device_name() by GPU_NAMES, in order (the first match wins).
GPU_PEAKS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.5, "fp16": 756.5, "fp32": 51.2},
    "H200": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},  # H200 SXM: H100 SXM's compute, more and faster memory
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},  # SXM and PCIe alike
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3},
}
# (pattern searched in the CUDA device name, GPU_PEAKS key); "H100 80GB HBM3" is the SXM part's name, and
# word boundaries keep an L40S from reading as an L4 or an H100 NVL from reading as either H100 entry
GPU_NAMES: tuple[tuple[str, str], ...] = (
    (r"\bH100 PCIe\b", "H100 PCIe"), (r"\bH100 (SXM|80GB HBM3)\b", "H100 SXM"), (r"\bH200\b", "H200"),
    (r"\bA100\b", "A100"), (r"\bL4\b", "L4"),
)
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, **AUTOCAST_DTYPES}


@dataclass(frozen=True)
class Peak:
    """A device's peak FLOP/s at one precision and where the figure comes from."""

    flops_per_s: float
    source: str  # "datasheet: H100 SXM bf16 dense" or "measured: fp32 1024^3 matmul on cpu, 2 thread(s)"


def gpu_table_entry(device_name: str) -> str | None:
    """The :data:`GPU_PEAKS` key of a CUDA device name, or None for a GPU not in the table."""
    for pattern, key in GPU_NAMES:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return key
    return None


def matmul_peak_flops(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                      size: int = MATMUL_SIZE, repeats: int = MATMUL_REPEATS) -> float:
    """Best FLOP/s of a ``size``^3 matmul in ``dtype`` on ``device`` (CPU: at torch's current thread count)."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
    torch.mm(left, right)
    best = math.inf
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        torch.mm(left, right)
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_peak(device: torch.device, precision: str, repeats: int = TRIAL_MATMUL_REPEATS) -> Peak:
    """The peak FLOP/s a run at ``precision`` ('fp32', 'bf16', 'fp16') on ``device`` is measured against."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        key = gpu_table_entry(name)
        if key is not None:
            return Peak(GPU_PEAKS[key][precision] * 1e12, f"datasheet: {key} {precision} dense")
    flops = matmul_peak_flops(DTYPES[precision], device, repeats=repeats)
    threads = f", {torch.get_num_threads()} thread(s)" if device.type == "cpu" else ""
    return Peak(flops, f"measured: {precision} {MATMUL_SIZE}^3 matmul on {device}{threads}")


def utilisation(flops: float, seconds: float, peak: Peak, devices: int = 1) -> dict[str, float | str]:
    """result.json's ``mfu`` section: achieved training FLOP/s, the peak, its source, and their ratio.

    ``devices``: how many devices of ``peak`` shared the ``flops`` (the workers of a data-parallel
    trial train one global batch together), so the peak is theirs together.
    """
    achieved = flops / seconds if seconds > 0 else math.nan
    total_peak = devices * peak.flops_per_s
    source = peak.source if devices == 1 else f"{devices} x {peak.source}"
    return {"train_flops_per_s": achieved, "peak_flops_per_s": total_peak, "peak_source": source,
            "mfu": achieved / total_peak}
