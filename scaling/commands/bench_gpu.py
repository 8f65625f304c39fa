"""``scaling bench gpu``: the prepared GPU check, sized for one call of under 8 minutes on one H100/H200 (an estimate:
it has not run on a GPU yet).

Runs the sections of :mod:`scaling.benchmarks.gpu_check` (attention correctness against fp64,
attention TFLOP/s with rab, HSTU vs FlashAttention-2 encoder layers with and without Stochastic
Length, bf16 training MFU, M-FALCON on CUDA), prints one markdown table and writes it with the
same rows as CSV: ``OUT/gpu_check.md`` and ``OUT/gpu_check.csv``. ``--dry-run`` runs every section
on the CPU at toy sizes, untimed: it checks the plumbing (the test suite runs it) and claims nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UserError
from scaling.benchmarks.gpu_check import SECTIONS
from scaling.commands.bench import require_cuda

HELP = ("the prepared GPU check (estimated < 8 min on one H100/H200): attention correctness vs fp64, attention TFLOP/s, "
        "HSTU vs FlashAttention-2 layers, bf16 training MFU, M-FALCON; one CSV + markdown table (--dry-run: CPU, toy)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs") / "gpu-check", metavar="DIR",
                        help="writes DIR/gpu_check.csv and DIR/gpu_check.md (default: runs/gpu-check)")
    parser.add_argument("--device", default=None, help="CUDA device to check (default: cuda)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run, in their fixed order (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs, lengths and weights (default: 0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="every section on the CPU at toy sizes, untimed: checks the script, measures nothing")


def run(args: argparse.Namespace) -> int:
    from scaling.benchmarks.gpu_check import COLUMNS, GpuCheckConfig, run_gpu_check
    from scaling.benchmarks.measure import median_milliseconds, untimed
    from scaling.benchmarks.report import format_markdown, write_csv

    if args.dry_run and args.device is not None:
        raise UserError(f"--dry-run runs on the CPU; drop --device {args.device}")
    device = "cpu" if args.dry_run else (args.device or "cuda")
    if not args.dry_run:
        require_cuda(device, "gpu")
    config = GpuCheckConfig(device=device, dry_run=args.dry_run, sections=tuple(args.sections), seed=args.seed)
    rows = run_gpu_check(config, untimed if args.dry_run else median_milliseconds,
                         progress=lambda line: print(line, flush=True))
    header = _header(config)
    table = format_markdown([{**row, "value": _value(row["value"])} for row in rows], COLUMNS)
    print()
    print(header)
    print()
    print(table)
    write_csv(rows, COLUMNS, args.out / "gpu_check.csv")
    (args.out / "gpu_check.md").write_text(f"{header}\n\n{table}\n")
    print(f"wrote {len(rows)} rows to {args.out / 'gpu_check.csv'} and {args.out / 'gpu_check.md'}")
    return 0


def _value(value: object) -> object:
    """A value cell: three significant digits (errors of 1e-7 and throughputs of 1e6 alike), '-' when unmeasured."""
    return f"{value:.3g}" if isinstance(value, float) else value


def _header(config) -> str:
    import torch

    if config.dry_run:
        return ("GPU check, DRY RUN on the CPU at toy sizes, untimed (cpu attention backend for Triton, CPU flash "
                "SDPA where FlashAttention-2 needs CUDA): it exercises the script and claims nothing about a GPU.")
    return (f"GPU check on {torch.cuda.get_device_name(config.device)}, torch {torch.__version__}; targets are the "
            "issue's (H100 SXM, bf16).")
