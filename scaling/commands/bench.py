"""``scaling bench BENCHMARK``: GPU micro-benchmarks, one sub-subcommand per benchmark.

Each benchmark module (listed in ``BENCHMARKS``) exposes ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` like a top-level command, so ``scaling bench encoder`` can join
``scaling bench attention`` by adding one entry.
"""

from __future__ import annotations

import argparse

from scaling.commands import add_subcommands, run_subcommand

HELP = "time kernels on a CUDA GPU (attention: HSTU jagged attention vs FlashAttention SDPA)"

# benchmark name -> module implementing it
BENCHMARKS: dict[str, str] = {
    "attention": "scaling.commands.bench_attention",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, BENCHMARKS, dest="benchmark", metavar="BENCHMARK")


def run(args: argparse.Namespace) -> int:
    return run_subcommand(args, "benchmark")
