"""``scaling bench BENCHMARK``: benchmarks that print a table, one sub-subcommand per benchmark.

Each benchmark module (listed in ``BENCHMARKS``) exposes ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` like a top-level command, so a benchmark joins by adding one entry. The
kernel benchmarks (attention, encoder) time on a CUDA GPU and without one say so in one line
(:func:`require_cuda`); ``train`` times the CPU training path.
"""

from __future__ import annotations

import argparse

from scaling.commands import add_subcommands, run_subcommand
from core.errors import UserError

HELP = ("benchmarks (tables + CSV): train: CPU training throughput, GFLOP/s and phase split; on a CUDA GPU, "
        "attention: HSTU jagged attention vs FlashAttention SDPA; encoder: an HSTU layer vs a FlashAttention-2 "
        "Transformer layer; gpu: the prepared GPU check (--dry-run on CPU); kernels: registers, spills and shared "
        "memory of every attention kernel config for sm_90/sm_80, compiled on the CPU")

# benchmark name -> module implementing it
BENCHMARKS: dict[str, str] = {
    "attention": "scaling.commands.bench_attention",
    "encoder": "scaling.commands.bench_encoder",
    "gpu": "scaling.commands.bench_gpu",
    "kernels": "scaling.commands.bench_kernels",
    "train": "scaling.commands.bench_train",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, BENCHMARKS, dest="benchmark", metavar="BENCHMARK")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args, "benchmark")


def require_cuda(device: str, benchmark: str) -> None:
    """Raise the one-line error a benchmark gives when ``device`` is not a CUDA GPU torch can use."""
    import torch

    if not device.startswith("cuda"):
        raise UserError(f"scaling bench {benchmark} needs a CUDA GPU; got --device {device}")
    if not torch.cuda.is_available():
        raise UserError(f"scaling bench {benchmark} needs a CUDA GPU, and torch sees none on this machine")
