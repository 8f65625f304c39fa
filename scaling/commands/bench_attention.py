"""``scaling bench attention``: HSTU jagged attention (Triton or reference) vs causal FlashAttention SDPA.

Prints one table row per (n, batch kind, implementation) with forward and forward+backward
milliseconds and TFLOP/s, and optionally writes the same rows as CSV. What is timed and how
FLOPs are counted is documented in :mod:`scaling.benchmarks.attention`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scaling.commands.bench import require_cuda
from core.errors import UserError

HELP = "time HSTU jagged attention against causal FlashAttention SDPA (needs a CUDA GPU)"
DEFAULT_LENGTHS = (1024, 2048, 4096, 8192)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="also write the rows to this CSV file")
    parser.add_argument("--device", default="cuda", help="CUDA device to run on (default: cuda)")
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16", help="input dtype (default: bf16)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS), metavar="N",
                        help="sequence lengths n to time (default: 1024 2048 4096 8192)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads (default: 8)")
    parser.add_argument("--head-dim", type=int, default=64, help="d_qk = d_v (default: 64)")
    parser.add_argument("--tokens", type=int, default=32768,
                        help="tokens per batch; each n uses max(1, tokens // n) * n (default: 32768)")
    parser.add_argument("--backend", choices=("triton", "reference"), default="triton",
                        help="HSTU implementation to time (default: triton)")
    parser.add_argument("--rab", choices=("none", "position", "time", "both"), default="none",
                        help="relative attention bias included in the HSTU timing (default: none, like SDPA)")
    parser.add_argument("--seed", type=int, default=0, help="seed for jagged lengths and inputs (default: 0)")


def run(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    require_cuda(config.device, "attention")
    from scaling.benchmarks.attention import RESULT_COLUMNS, run_attention_benchmark
    from scaling.benchmarks.report import format_table, write_csv

    rows = run_attention_benchmark(config, progress=lambda row: print(_progress_line(row), flush=True))
    print()
    print(format_table(rows, RESULT_COLUMNS))
    if args.csv is not None:
        write_csv(rows, RESULT_COLUMNS, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0


def _config_from_args(args: argparse.Namespace):
    from scaling.benchmarks.attention import AttentionBenchConfig

    for name in ("heads", "head_dim", "tokens"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if any(n < 1 for n in args.lengths):
        raise UserError(f"--lengths must all be >= 1; got {args.lengths}")
    return AttentionBenchConfig(
        lengths=tuple(args.lengths), heads=args.heads, head_dim=args.head_dim, tokens=args.tokens,
        dtype=args.dtype, device=args.device, backend=args.backend, rab=args.rab, seed=args.seed,
    )


def _progress_line(row: dict[str, object]) -> str:
    timing = row.get("note") or f"fwd {row.get('fwd_ms', float('nan')):.3f} ms, fwd+bwd {row.get('fwd_bwd_ms', float('nan')):.3f} ms"
    return f"n={row['n']} {row['batch']} {row['impl']}: {timing}"
