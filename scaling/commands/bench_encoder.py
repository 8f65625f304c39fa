"""``scaling bench encoder``: one HSTU layer vs one FlashAttention-2 Transformer layer, training and inference.

Prints one row per (n, mode, batch, implementation), the paper's targets next to what was measured,
and optionally the rows as CSV. What runs, how batches are drawn (with Stochastic Length for
training) and how time and memory are measured is documented in :mod:`scaling.benchmarks.encoder`.
``--dry-run`` runs every case once on the CPU at toy size without timing it: it checks the plumbing
and reports activation bytes, and prints no speed.

``--models SETTING ...`` times whole HSTU and SASRec training steps on the CPU instead, each with
the reference and the CPU attention backend, at shipped run settings (Table 4, the quickstart's
largest HSTU): :mod:`scaling.benchmarks.encoder_models`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scaling.commands.bench import require_cuda
from core.errors import UserError

HELP = ("time an HSTU encoder layer against a FlashAttention-2 Transformer layer (needs a CUDA GPU), "
        "or with --models whole HSTU and SASRec training steps on the CPU")
DEFAULT_LENGTHS = (1024, 2048, 4096, 8192)
DEFAULT_BATCH_TOKENS = 32768
DRY_RUN_LENGTHS = (64, 128)  # small enough for the padded reference attention on a CPU
DRY_RUN_BATCH_TOKENS = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", type=Path, default=None, metavar="FILE", help="also write the rows to this CSV file")
    parser.add_argument("--device", default=None, help="CUDA device to run on (default: cuda)")
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16", help="weights and activations (default: bf16)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, metavar="N",
                        help=f"sequence lengths n (default: {' '.join(map(str, DEFAULT_LENGTHS))}; "
                             f"dry run: {' '.join(map(str, DRY_RUN_LENGTHS))})")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help=f"tokens per batch before Stochastic Length; each n uses max(1, tokens // n) * n "
                             f"(default: {DEFAULT_BATCH_TOKENS}; dry run: {DRY_RUN_BATCH_TOKENS})")
    parser.add_argument("--alpha", type=float, default=1.6,
                        help="Stochastic Length alpha for the jagged-sl training batch, in (1, 2] (default: 1.6)")
    parser.add_argument("--layers", type=int, default=1,
                        help="layers stacked per step; times and memory are reported per layer (default: 1)")
    parser.add_argument("--rab", action="store_true",
                        help="time HSTU with rab^{p,t} (default: without, as the paper's Figure 5)")
    parser.add_argument("--transformer-attention", choices=("flash-jagged", "flash-padded"), default="flash-jagged",
                        help="Transformer attention: FlashAttention-2 on nested jagged tensors (no padding) or on "
                             "the batch padded to its longest sequence (default: flash-jagged)")
    parser.add_argument("--seed", type=int, default=0, help="seed for lengths, SL, weights and inputs (default: 0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every case once on the CPU, untimed (reference HSTU attention, CPU flash SDPA): "
                             "checks the plumbing and reports activation bytes")
    parser.add_argument("--models", nargs="+", default=None, metavar="SETTING",
                        help="instead, time HSTU and SASRec training steps (backbone forward + backward) on the CPU "
                             "with the reference and cpu attention backends at these settings: table4, quickstart")
    parser.add_argument("--threads", type=int, default=1, help="--models: torch CPU threads (default: 1)")
    parser.add_argument("--bound", action="store_true",
                        help="--models: also time 'hstu-bound', HSTU with its Eq. 1 and Eq. 3 norms, SiLU, U gate and "
                             "dropout removed: not a model, a lower bound on what fusing that work could reach")
    parser.add_argument("--repeats", type=int, default=10,
                        help="--models: timed steps per implementation, round-robin; the median is reported (default: 10)")


def run(args: argparse.Namespace) -> int:
    if args.models is not None:
        return _run_models(args)
    if args.bound:
        raise UserError("--bound adds a row to the --models table; add --models table4 (or quickstart)")
    config = _config_from_args(args)
    if not args.dry_run:
        require_cuda(config.device, "encoder")
    from scaling.benchmarks.encoder import RESULT_COLUMNS, TARGET_COLUMNS, run_encoder_benchmark, target_rows
    from scaling.benchmarks.measure import median_milliseconds, untimed
    from scaling.benchmarks.report import format_table, write_csv

    print(_header(config, args.dry_run), flush=True)
    timer = untimed if args.dry_run else median_milliseconds
    rows = run_encoder_benchmark(config, timer, progress=lambda row: print(_progress_line(row), flush=True))
    print()
    print(format_table(rows, RESULT_COLUMNS))
    print()
    print(f"targets (H100, {config.dtype}; measured here on {_device_name(config.device)}):")
    print(format_table(target_rows(rows), TARGET_COLUMNS))
    if args.csv is not None:
        write_csv(rows, RESULT_COLUMNS, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0


def _run_models(args: argparse.Namespace) -> int:
    """``--models``: the CPU training-step table of :mod:`scaling.benchmarks.encoder_models` and its target."""
    from scaling.benchmarks import encoder_models
    from scaling.benchmarks.report import format_table, write_csv

    config = _models_config_from_args(args)
    timer = encoder_models.untimed if args.dry_run else encoder_models.round_robin_timer(config.repeats)
    print(f"{'DRY RUN, untimed: ' if args.dry_run else ''}HSTU and SASRec training steps (backbone forward + "
          f"backward) on the CPU, {config.threads} thread(s), median of {config.repeats} round-robin repeats; ratios "
          "use CPU time; other jobs on the machine make absolute times noisy, compare rows of one run", flush=True)
    for name in config.settings:
        setting = encoder_models.MODEL_SETTINGS[name]
        print(f"  {name}: {setting.num_layers} layers, {setting.num_heads} head(s), d={setting.embedding_dim}, "
              f"n={setting.max_seq_len}, batch {setting.batch_size}, dropout {setting.dropout} ({setting.source})")
    rows = encoder_models.run_model_benchmark(config, timer, progress=lambda row: print(_model_progress(row), flush=True))
    print()
    print(format_table(rows, encoder_models.RESULT_COLUMNS))
    targets = encoder_models.target_rows(rows)
    if targets:
        print()
        print(format_table(targets, encoder_models.TARGET_COLUMNS))
    if args.csv is not None:
        write_csv(rows, encoder_models.RESULT_COLUMNS, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0


def _models_config_from_args(args: argparse.Namespace):
    from scaling.benchmarks.encoder_models import MODEL_SETTINGS, ModelBenchConfig

    unknown = [name for name in args.models if name not in MODEL_SETTINGS]
    if unknown:
        raise UserError(f"--models: unknown setting {unknown[0]!r}; choose from {', '.join(MODEL_SETTINGS)}")
    if args.device is not None:
        raise UserError(f"--models times on the CPU; drop --device {args.device}")
    for flag, value in (("--threads", args.threads), ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1; got {value}")
    return ModelBenchConfig(settings=tuple(dict.fromkeys(args.models)), threads=args.threads, repeats=args.repeats,
                            seed=args.seed, bound=args.bound)


def _model_progress(row: dict[str, object]) -> str:
    ms, cpu_ms = row.get("ms"), row.get("cpu_ms")
    timed = isinstance(ms, float) and isinstance(cpu_ms, float)
    timing = f"{ms:.1f} ms/step, {cpu_ms:.1f} CPU ms" if timed else "ran (untimed)"
    return f"{row['setting']} {row['batch']} {row['model']}-{row['backend']}: {timing}"


def _config_from_args(args: argparse.Namespace):
    from scaling.benchmarks.encoder import DRY_RUN_TRANSFORMER_ATTENTION, EncoderBenchConfig

    if args.dry_run and args.device is not None:
        raise UserError(f"--dry-run runs on the CPU; drop --device {args.device}")
    lengths = args.lengths or list(DRY_RUN_LENGTHS if args.dry_run else DEFAULT_LENGTHS)
    batch_tokens = args.batch_tokens or (DRY_RUN_BATCH_TOKENS if args.dry_run else DEFAULT_BATCH_TOKENS)
    if any(n < 1 for n in lengths):
        raise UserError(f"--lengths must all be >= 1; got {lengths}")
    for flag, value in (("--batch-tokens", batch_tokens), ("--layers", args.layers)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1; got {value}")
    if not 1.0 < args.alpha <= 2.0:
        raise UserError(f"--alpha must be in (1, 2] (Eq. 4); got {args.alpha}")
    return EncoderBenchConfig(
        lengths=tuple(lengths), batch_tokens=batch_tokens, alpha=args.alpha, layers=args.layers, dtype=args.dtype,
        device="cpu" if args.dry_run else (args.device or "cuda"), rab=args.rab,
        transformer_attention=DRY_RUN_TRANSFORMER_ATTENTION if args.dry_run else args.transformer_attention,
        seed=args.seed,
    )


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU (dry run, untimed)"


def _header(config, dry_run: bool) -> str:
    from scaling.benchmarks.encoder import EMBEDDING_DIM, FFN_DIM, HEAD_DIM, NUM_HEADS

    mode = "DRY RUN on the CPU: untimed, reference HSTU attention, CPU flash SDPA; " if dry_run else ""
    return (f"{mode}encoder layer d={EMBEDDING_DIM} h={NUM_HEADS} d_qk=d_v={HEAD_DIM} d_ff={FFN_DIM}, "
            f"{config.dtype}, {config.layers} layer(s), "
            f"{config.batch_tokens} tokens/batch, SL alpha {config.alpha}, HSTU rab {'on' if config.rab else 'off'}, "
            f"Transformer attention {config.transformer_attention}")


def _progress_line(row: dict[str, object]) -> str:
    ms = row.get("ms")
    timing = row.get("note") or (f"{ms:.3f} ms/layer" if isinstance(ms, float) else "ran (untimed)")
    return f"n={row['n']} {row['mode']} {row['batch']} {row['impl']}: {timing}"
