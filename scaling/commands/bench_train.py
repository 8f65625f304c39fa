"""``scaling bench train``: where CPU training time goes, for the quickstart's largest models.

Prints one row per model: training throughput (tokens/s, impressions/s for DLRMs), achieved
GFLOP/s of the analytic training FLOPs and its fraction of the machine's fp32 matmul peak
(measured in the same run at the same thread count), milliseconds per step, and the split of a
projected whole trial among data, forward, backward, optimizer and evaluation. ``--out DIR``
also writes ``DIR/train.csv`` (every measured column) and ``DIR/train.md``. What is timed and
how is documented in :mod:`scaling.benchmarks.training`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UserError

HELP = "time CPU training of the quickstart's largest HSTU, SASRec and DCN-v2: tokens/s, GFLOP/s vs matmul peak, phase split"

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = ("hstu", "sasrec", "dcnv2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads, for the training and the matmul peak alike (default: 1, as each "
                             "quickstart trial gets resources.cpu: 1)")
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per model (default: 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps before them (default: 3)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL",
                        help="cases to time: a group of the sweep (its largest trial) or sasrec (HSTU's config "
                             f"with model.name=sasrec) (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--sweep", type=Path, default=REPOSITORY_ROOT / "sweeps" / "quickstart.yaml",
                        help="the sweep whose groups' largest trials are timed (default: sweeps/quickstart.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a run-config key of every case, e.g. --set data.synthetic_industrial."
                             "num_users=300 (repeatable)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR", help="also write DIR/train.csv and DIR/train.md")


def run(args: argparse.Namespace) -> int:
    from scaling.benchmarks.report import format_markdown, format_table, write_csv
    from scaling.benchmarks.training import RESULT_COLUMNS, TABLE_COLUMNS, TrainBenchConfig, run_training_benchmark

    _check(args)
    config = TrainBenchConfig(_cases(args), args.steps, args.warmup, args.threads)
    peak, rows = run_training_benchmark(config, progress=lambda line: print(line, flush=True))
    header = _header(peak, config)
    print()
    print(header)
    print(format_table(rows, TABLE_COLUMNS))
    if args.out is not None:
        write_csv(rows, RESULT_COLUMNS, args.out / "train.csv")
        (args.out / "train.md").write_text(f"{header}\n\n{format_markdown(rows, TABLE_COLUMNS)}\n")
        print(f"wrote {args.out / 'train.csv'} and {args.out / 'train.md'}")
    return 0


def _check(args: argparse.Namespace) -> None:
    for flag, value, least in (("--threads", args.threads, 1), ("--steps", args.steps, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            raise UserError(f"{flag} must be >= {least}; got {value}")


def _cases(args: argparse.Namespace):
    from scaling.benchmarks.training import select_cases

    if not args.sweep.is_file():
        raise UserError(f"{args.sweep}: sweep not found; run from a clone of the repository or pass --sweep")
    return select_cases(args.sweep, args.models, args.overrides)


def _header(peak: float, config) -> str:
    return (f"CPU training, {config.threads} torch thread(s), {config.steps} timed steps per model after "
            f"{config.warmup_steps} warm-up; fp32 matmul peak {peak:.1f} GFLOP/s.\n"
            "Shares and trial_s are of one projected whole trial: its steps at the measured phase times, its "
            "evaluations at the measured time per target.")
