"""``scaling serve-bench``: candidates scored per second, naive vs batched-mask vs M-FALCON with KV cache.

``--size`` picks the defaults of the size flags: ``small`` (the default, about half a minute on
two CPU cores) or ``paper`` (a d=256, 4-layer model, n=1024 and up to 16,384 candidates: more than
15 minutes on two CPU cores, meant for a GPU). A size flag given explicitly wins over the preset.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import get_args, get_type_hints

HELP = "ranking inference throughput: naive per-candidate vs batched-mask vs M-FALCON KV cache (table + CSV)"

# --size -> defaults of the flags that set how much work is timed
SIZES: dict[str, dict[str, object]] = {
    "small": {"model_size": "small", "history_len": 256, "candidates": [256, 1024, 4096], "microbatch": [64, 256, 1024],
              "naive_sample": 4},
    "paper": {"model_size": "medium", "history_len": 1024, "candidates": [1024, 4096, 16384],
              "microbatch": [64, 256, 1024], "naive_sample": 8},
}


def _preset_help(flag: str) -> str:
    values = {size: preset[flag] for size, preset in SIZES.items()}
    shown = {size: " ".join(map(str, value)) if isinstance(value, list) else value for size, value in values.items()}
    return f"(default: {shown['small']}; --size paper: {shown['paper']})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", nargs="+", default=None, choices=["cpu", "cuda"],
                        help="devices to benchmark (default: cpu, plus cuda when available)")
    parser.add_argument("--size", choices=list(SIZES), default="small",
                        help="defaults of the size flags below: small (about half a minute on two CPU cores) or paper "
                             "(more than 15 minutes on two CPU cores) (default: small)")
    parser.add_argument("--candidates", nargs="+", type=int, default=None, help=f"m values {_preset_help('candidates')}")
    parser.add_argument("--microbatch", nargs="+", type=int, default=None, help=f"b_m values {_preset_help('microbatch')}")
    parser.add_argument("--history-len", type=int, default=None,
                        help=f"user history n, in tokens (Phi/a interleaved) {_preset_help('history_len')}")
    parser.add_argument("--model-size", default=None, choices=["small", "medium", "large"],
                        help="small: d=128, 2 layers; medium: d=256, 4 layers; large: d=512, 8 layers "
                             f"{_preset_help('model_size')}")
    parser.add_argument("--naive-sample", type=int, default=None,
                        help="naive scoring is timed on this many candidates and extrapolated to larger m "
                             f"{_preset_help('naive_sample')}")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats per configuration (median is reported)")
    parser.add_argument("--attention-backend", default="reference", choices=_attention_backends(),
                        help="jagged_attention backend of the uncached paths (the cached path has only a reference)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--csv", type=Path, default=None, help="write the rows to this CSV file")


def run(args: argparse.Namespace) -> int:
    import torch

    from core.errors import UserError
    from scaling.benchmarks.serving import (
        BenchSetup, device_rows, markdown_table,
    )

    args = _with_size_defaults(args)
    _check_arguments(args, UserError)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available on this machine; use --device cpu")
    if args.attention_backend == "triton" and "cpu" in devices:
        raise UserError("--attention-backend triton runs on CUDA only; pass --device cuda or use 'auto'")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    setup = BenchSetup(args.model_size, args.history_len, args.attention_backend)
    print(setup.describe())
    rows = []
    for name in devices:
        device = torch.device(name)
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
        print(f"== {name} ({where})", flush=True)
        rows.extend(device_rows(setup, device, args.candidates, args.microbatch, args.naive_sample, args.repeats,
                                progress=lambda line: print(f"   {line}", flush=True)))
    table = markdown_table(rows)
    print(table)
    print(f"max |diff|: largest logit difference between batched-mask, cached and naive (on naive's "
          f"{min(args.naive_sample, min(args.candidates))}-candidate sample) for that configuration")
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 0


def _with_size_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every size flag left unset taken from the ``--size`` preset."""
    preset = SIZES[args.size]
    return argparse.Namespace(**{**vars(args), **{flag: value for flag, value in preset.items() if getattr(args, flag) is None}})


def _check_arguments(args: argparse.Namespace, error: type[Exception]) -> None:
    for name in ("candidates", "microbatch"):
        if any(value < 1 for value in getattr(args, name)):
            raise error(f"--{name}: values must be >= 1; got {getattr(args, name)}")
    if args.history_len < 0:
        raise error(f"--history-len must be >= 0; got {args.history_len}")
    if args.naive_sample < 1 or args.repeats < 1:
        raise error(f"--naive-sample and --repeats must be >= 1; got {args.naive_sample}, {args.repeats}")


def _attention_backends() -> list[str]:
    """The backend names model.attention_backend accepts (read from the config, which imports no torch)."""
    from model.config import ModelConfig

    return list(get_args(get_type_hints(ModelConfig)["attention_backend"]))
