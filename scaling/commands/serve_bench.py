"""``scaling serve-bench``: candidates scored per second, naive vs batched-mask vs M-FALCON with KV cache."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HELP = "ranking inference throughput: naive per-candidate vs batched-mask vs M-FALCON KV cache (table + CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", nargs="+", default=None, choices=["cpu", "cuda"],
                        help="devices to benchmark (default: cpu, plus cuda when available)")
    parser.add_argument("--candidates", nargs="+", type=int, default=[1024, 4096, 16384], help="m values")
    parser.add_argument("--microbatch", nargs="+", type=int, default=[64, 256, 1024], help="b_m values")
    parser.add_argument("--history-len", type=int, default=1024, help="user history n, in tokens (Phi/a interleaved)")
    parser.add_argument("--model-size", default="medium", choices=["small", "medium", "large"],
                        help="small: d=128, 2 layers; medium: d=256, 4 layers; large: d=512, 8 layers")
    parser.add_argument("--naive-sample", type=int, default=8,
                        help="naive scoring is timed on this many candidates and extrapolated to larger m")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats per configuration (median is reported)")
    parser.add_argument("--attention-backend", default="reference", choices=["auto", "reference", "triton"],
                        help="jagged_attention backend of the uncached paths (the cached path has only a reference)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--csv", type=Path, default=None, help="write the rows to this CSV file")


def run(args: argparse.Namespace) -> int:
    import torch

    from core.errors import UserError
    from scaling.benchmarks.serving import (
        BenchSetup, bench_rows, build_bench_model, first_candidates, markdown_table, naive_row, synthetic_request, time_naive,
    )

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
        model = build_bench_model(setup, device)
        request = synthetic_request(args.history_len, max(args.candidates), device)
        naive = time_naive(model, request, args.naive_sample, device)
        for m in sorted(args.candidates):
            subset = first_candidates(request, m)
            rows.append(naive_row(model, setup, naive, m, device))
            for microbatch_size in sorted(args.microbatch):
                rows.extend(bench_rows(model, setup, subset, naive, microbatch_size, device, args.repeats))
                print(f"   m={m} b_m={microbatch_size}: {rows[-1]['candidates_per_s']:,.0f} candidates/s cached", flush=True)
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


def _check_arguments(args: argparse.Namespace, error: type[Exception]) -> None:
    for name in ("candidates", "microbatch"):
        if any(value < 1 for value in getattr(args, name)):
            raise error(f"--{name}: values must be >= 1; got {getattr(args, name)}")
    if args.history_len < 0:
        raise error(f"--history-len must be >= 0; got {args.history_len}")
    if args.naive_sample < 1 or args.repeats < 1:
        raise error(f"--naive-sample and --repeats must be >= 1; got {args.naive_sample}, {args.repeats}")
