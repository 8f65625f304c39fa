"""``scaling train CONFIG.yaml [--set key=value ...] [--out DIR]``: one run, one result.json."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

_FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # writing result.json can fail so

HELP = "train and evaluate one configuration; writes OUT/result.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="YAML run config (see `scaling config --keys`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=0.0005 (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/NAME-TIMESTAMP)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def format_metrics_table(result: dict) -> str:
    """A small two-column table of the best-validation and test metrics."""
    names = [n for n in result["test"] if not n.startswith("positive_rate/")]
    width = max(len(n) for n in names)
    lines = [f"{'metric':<{width}}  {'valid':>8}  {'test':>8}"]
    for name in names:
        valid = result["valid"].get(name, float("nan"))
        lines.append(f"{name:<{width}}  {valid:8.4f}  {result['test'][name]:8.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from core.errors import UserError
    from core.files import check_output_folder
    from scaling.config import load_run_config
    from scaling.train import train

    config = load_run_config(args.config, args.overrides)
    out_dir = args.out or Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.out is None:  # an explicit --out was checked with every command's output options
        warning = check_output_folder(out_dir, "the default output folder")
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
    try:
        result = train(config, out_dir=out_dir, progress=not args.quiet)
    except OSError as error:
        if error.errno not in _FULL_OR_READ_ONLY:
            raise
        raise UserError(f"cannot write {out_dir / 'result.json'} ({error.strerror}); free space or pass --out "
                        "elsewhere") from None
    params = result["params"]
    progress = (f"best epoch {result['best_epoch']}" if "best_epoch" in result
                else f"{len(result.get('window_targets', []))} time windows, best after window "
                     f"{result['best_window'] + 1}")
    print(
        f"{config.model.name} on {config.data.dataset} ({config.data.task}, {config.train.regime}): "
        f"{result['steps']} steps, {progress}, {params['non_embedding']:,} non-embedding + "
        f"{params['embedding']:,} embedding parameters, {result['wall_seconds']:.1f} s on {result['device']}"
    )
    print(format_metrics_table(result))
    print(f"wrote {out_dir / 'result.json'}")
    return 0
