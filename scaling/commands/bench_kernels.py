"""``scaling bench kernels``: registers, spills and shared memory of every attention kernel configuration.

Compiles each autotune configuration of the HSTU forward and backward kernels for sm_90 and
sm_80 in bf16 and fp16 (no GPU needed: Triton's ptxas runs on the CPU) and prints one row per
(kernel, configuration, target, dtype): registers per thread, spilled bytes, shared memory and
its limit, and whether the matmuls use wgmma. Features default to all on (rab^{p,t} with its
gradients, targets, contextual prefix), the case the models run. Exits 1 when a configuration
spills or exceeds shared memory, so it can gate a change. How it compiles is documented in
:mod:`scaling.benchmarks.kernel_resources`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from core.errors import UserError

HELP = ("compile every attention kernel autotune config for sm_90/sm_80 (no GPU needed) and print registers, "
        "spills and shared memory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from scaling.benchmarks.kernel_resources import ACTIVATIONS, DTYPES, KERNELS, TARGET_CAPABILITIES

    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS), help="(default: both)")
    parser.add_argument("--targets", nargs="+", choices=tuple(TARGET_CAPABILITIES), default=list(TARGET_CAPABILITIES),
                        help="(default: sm_90 sm_80)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES), help="(default: bf16 fp16)")
    parser.add_argument("--activations", nargs="+", choices=ACTIVATIONS, default=["silu"],
                        help="silu (HSTU) and/or softmax (default: silu)")
    parser.add_argument("--features", choices=("on", "off"), default="on",
                        help="rab^{p,t} (and its gradients), targets and contextual prefix all on or all off "
                             "(default: on)")
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="also write the rows to this CSV file")


def run(args: argparse.Namespace) -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise UserError("scaling bench kernels compiles real kernels; unset TRITON_INTERPRET")
    from scaling.benchmarks.kernel_resources import COLUMNS, survey
    from scaling.benchmarks.report import format_table, write_csv

    rows = survey(args.kernels, args.targets, args.dtypes, args.activations, features=args.features == "on",
                  progress=lambda row: print(_progress_line(row), flush=True))
    print()
    print(format_table([row.row() for row in rows], COLUMNS))
    if args.csv is not None:
        write_csv([row.row() for row in rows], COLUMNS, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    misfits = [row for row in rows if not row.fits]
    if misfits:
        print(f"{len(misfits)} of {len(rows)} configurations spill or exceed shared memory")
        return 1
    print(f"all {len(rows)} configurations fit: no spills, shared memory within each target's limit")
    return 0


def _progress_line(row) -> str:
    return (f"{row.kernel} {row.activation} {row.config} {row.target} {row.dtype}: {row.registers} registers, "
            f"spills {row.spill_stores}/{row.spill_loads} B, shared {row.shared_bytes} B")
