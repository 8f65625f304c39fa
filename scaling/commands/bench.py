"""``scaling bench BENCHMARK``: GPU micro-benchmarks, one sub-subcommand per benchmark.

Each benchmark module (listed in ``BENCHMARKS``) exposes ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int`` like a top-level command, so ``scaling bench encoder`` can join
``scaling bench attention`` by adding one entry.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "time kernels on a CUDA GPU (attention: HSTU jagged attention vs FlashAttention SDPA)"

# benchmark name -> module implementing it
BENCHMARKS: dict[str, str] = {
    "attention": "scaling.commands.bench_attention",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        sub = benchmarks.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run_benchmark=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._run_benchmark(args) or 0)
