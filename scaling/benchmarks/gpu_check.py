"""The prepared GPU check: every GPU-side claim of the harness measured in one call, as one long table.

Five sections, each reusing the benchmark module that owns its measurement:

* ``correctness``: the Triton attention forward and backward against the fp64 PyTorch reference,
  in fp32 and bf16, every feature on (:mod:`scaling.benchmarks.correctness`);
* ``attention``: HSTU jagged attention with in-kernel rab^{p,t} against causal FlashAttention SDPA,
  forward and forward+backward TFLOP/s at n = 1024..8192, h = 8, d_qk = 64
  (:mod:`scaling.benchmarks.attention`);
* ``encoder``: an HSTU layer against the FlashAttention-2 Transformer layer, training with and
  without Stochastic Length and inference: ms per layer, activation and peak bytes per token,
  speedups (:mod:`scaling.benchmarks.encoder`);
* ``training``: bf16 training steps of the one training path (``scaling.train.take_step``) on a
  Table-4-shaped HSTU (ML-1M's size, on synthetic-dp data: the machine has no network) and at
  d = 512, n = 2048: tokens/s, achieved TFLOP/s and MFU against the device's peak
  (:mod:`scaling.benchmarks.training`, :mod:`scaling.mfu`);
* ``mfalcon``: ranking inference on CUDA, naive vs batched-mask vs M-FALCON with KV cache
  (:mod:`scaling.benchmarks.serving`).

Every measurement is one row: section, case, implementation, dtype, metric, value, unit, and where
the issue sets one, the target and whether it was met. A section that fails becomes one row
with its one-line error, and the others still run. ``dry_run`` runs the same code on the CPU at
toy sizes, untimed (values that need a clock are empty), so the test suite exercises the script.
Sized to finish in under 8 minutes on one H100/H200 (each section prints its elapsed time); an estimate
until it has run on one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from scaling.benchmarks.measure import Timer

COLUMNS = ("section", "case", "impl", "dtype", "metric", "value", "unit", "target", "status", "note")
SECTIONS = ("correctness", "attention", "encoder", "training", "mfalcon")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """How much work each section does: the GPU check's sizes, or a dry run's toy ones."""

    correctness_lengths: tuple[int, ...]
    heads: int
    head_dim: int
    attention_lengths: tuple[int, ...]
    attention_tokens: int
    encoder_lengths: tuple[int, ...]
    encoder_tokens: int
    train_steps: int  # timed steps per training case
    warmup_steps: int  # untimed steps before them: Triton autotuning and allocator warm-up
    table4_records: int  # synthetic-dp users of the Table-4-shaped case
    table4_batch: int  # its sequences per step (Table 4: 128)
    long_records: int  # synthetic-dp users of the d=512, n=2048 case
    long_length: int  # its n
    long_dim: int  # its d
    mfalcon_size: str  # scaling.benchmarks.serving.MODEL_SIZES key
    mfalcon_history: int
    mfalcon_candidates: tuple[int, ...]
    mfalcon_microbatches: tuple[int, ...]


GPU_SIZES = Sizes(
    correctness_lengths=(0, 1, 17, 128, 1000, 2048), heads=8, head_dim=64,
    attention_lengths=(1024, 2048, 4096, 8192), attention_tokens=32768,
    encoder_lengths=(2048, 8192), encoder_tokens=32768,
    train_steps=30, warmup_steps=3, table4_records=6040, table4_batch=128, long_records=512, long_length=2048, long_dim=512,
    mfalcon_size="medium", mfalcon_history=1024, mfalcon_candidates=(1024, 4096, 16384), mfalcon_microbatches=(256, 1024),
)
DRY_RUN_SIZES = Sizes(
    correctness_lengths=(0, 1, 17, 35), heads=2, head_dim=16,
    attention_lengths=(32, 64), attention_tokens=128,
    encoder_lengths=(64,), encoder_tokens=256,
    train_steps=1, warmup_steps=1, table4_records=60, table4_batch=4, long_records=8, long_length=64, long_dim=16,
    mfalcon_size="small", mfalcon_history=32, mfalcon_candidates=(16, 64), mfalcon_microbatches=(16,),
)
# Targets (H100 SXM, bf16), issue 14
ATTENTION_TARGET_LENGTH = 8192
ATTENTION_TARGETS = {"fwd_tflops": 500.0, "fwd_bwd_tflops": 400.0}
MFU_TARGET = 0.35  # training at d = 512, n = 2048


@dataclass(frozen=True)
class GpuCheckConfig:
    device: str  # 'cuda' (or 'cpu' for a dry run)
    dry_run: bool
    sections: tuple[str, ...]
    seed: int = 0

    @property
    def sizes(self) -> Sizes:
        return DRY_RUN_SIZES if self.dry_run else GPU_SIZES


def row(section: str, case: str, impl: str, dtype: str, metric: str, value: object, unit: str = "",
        target: str = "", status: str = "", note: str = "") -> dict[str, object]:
    return {"section": section, "case": case, "impl": impl, "dtype": dtype, "metric": metric, "value": value,
            "unit": unit, "target": target, "status": status, "note": note}


def status(value: object, sign: str, bound: float) -> str:
    """'met' or 'MISSED' for a measured number against ``sign bound``; 'not measured' without a number."""
    if not isinstance(value, (int, float)) or value != value:
        return "not measured"
    return "met" if (value >= bound if sign == ">=" else value <= bound) else "MISSED"


def run_gpu_check(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    """Every requested section's rows, in SECTIONS order; a failing section leaves one row with its error."""
    runners = {"correctness": correctness_rows, "attention": attention_rows, "encoder": encoder_rows,
               "training": training_rows, "mfalcon": mfalcon_rows}
    rows: list[dict[str, object]] = []
    for section in SECTIONS:
        if section not in config.sections:
            continue
        started = time.perf_counter()
        progress(f"== {section}")
        try:
            rows.extend(runners[section](config, timer, progress))
        except Exception as error:  # one broken section must not cost the others their device time
            rows.append(row(section, "-", "-", "-", "error", None, note=_one_line(error)))
        progress(f"== {section}: {time.perf_counter() - started:.1f} s")
    return rows


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:160]


# --- sections ---------------------------------------------------------------------------------


def correctness_rows(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    from scaling.benchmarks.correctness import TOLERANCE, CorrectnessCase, attention_errors

    sizes = config.sizes
    backend = "cpu" if config.dry_run else "triton"
    rows = []
    for dtype in ("fp32", "bf16"):
        case = CorrectnessCase(backend, dtype, sizes.correctness_lengths, sizes.heads, sizes.head_dim, config.device,
                               config.seed)
        errors = attention_errors(case)
        progress(f"{backend} {dtype}: worst error {max(errors.values()):.2e} (tolerance {TOLERANCE[dtype]:.0e})")
        lengths = ",".join(map(str, sizes.correctness_lengths))
        rows += [row("correctness", f"lengths {lengths}, rab p+t, targets, context", backend, dtype,
                     f"error {name}", error, "rel. to fp64", f"<= {TOLERANCE[dtype]:g}",
                     status(error, "<=", TOLERANCE[dtype])) for name, error in errors.items()]
    return rows


def attention_rows(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    from scaling.benchmarks.attention import AttentionBenchConfig, run_attention_benchmark

    sizes = config.sizes
    bench = AttentionBenchConfig(lengths=sizes.attention_lengths, heads=sizes.heads, head_dim=sizes.head_dim,
                                 tokens=sizes.attention_tokens, dtype="bf16", device=config.device,
                                 backend="cpu" if config.dry_run else "triton", rab="both", seed=config.seed)
    measured = run_attention_benchmark(bench, progress=lambda r: progress(f"n={r['n']} {r['batch']} {r['impl']}"),
                                       timer=timer)
    rows = []
    for result in measured:
        case = f"n={result['n']} {result['batch']} ({result['sequences']} seq, {result['tokens']} tok)"
        for metric, label in (("fwd_tflops", "fwd TFLOP/s"), ("fwd_bwd_tflops", "fwd+bwd TFLOP/s")):
            target = ATTENTION_TARGETS[metric] if _is_attention_target(result, config) else None
            rows.append(row("attention", case, str(result["impl"]), "bf16", label, result.get(metric), "TFLOP/s",
                            f">= {target:g}" if target else "", status(result.get(metric), ">=", target) if target else "",
                            str(result.get("note") or "")))
    return rows


def _is_attention_target(result: dict[str, object], config: GpuCheckConfig) -> bool:
    """The targets are set for HSTU on the full batch at the longest length (n = 8192 on the GPU)."""
    return (str(result["impl"]).startswith("hstu") and result["batch"] == "full"
            and result["n"] == max(config.sizes.attention_lengths))


def encoder_rows(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    from scaling.benchmarks.encoder import (
        DRY_RUN_TRANSFORMER_ATTENTION, EncoderBenchConfig, run_encoder_benchmark, target_rows,
    )

    sizes = config.sizes
    bench = EncoderBenchConfig(lengths=sizes.encoder_lengths, batch_tokens=sizes.encoder_tokens, alpha=1.6, layers=1,
                               dtype="bf16", device=config.device, rab=False,
                               transformer_attention=DRY_RUN_TRANSFORMER_ATTENTION if config.dry_run else "flash-jagged",
                               seed=config.seed)
    measured = run_encoder_benchmark(bench, timer, progress=lambda r: progress(f"n={r['n']} {r['mode']} {r['batch']} "
                                                                                f"{r['impl']}"))
    rows = []
    metrics = (("ms", "ms/layer", "ms"), ("tflops", "TFLOP/s", "TFLOP/s"), ("act_B_tok", "saved activations", "B/token"),
               ("peak_B_tok", "peak memory", "B/token"), ("speedup", "speedup vs Transformer", "x"),
               ("speedup_no_sl", "speedup vs Transformer without SL", "x"))
    for result in measured:
        case = f"n={result['n']} {result['mode']} {result['batch']}"
        for key, label, unit in metrics:
            if key in ("act_B_tok", "peak_B_tok") and result["mode"] != "train":
                continue
            if key.startswith("speedup") and not str(result["impl"]).startswith("hstu"):
                continue
            if key == "speedup_no_sl" and result["batch"] != "jagged-sl":
                continue
            rows.append(row("encoder", case, str(result["impl"]), "bf16", label, result.get(key), unit,
                            note=str(result.get("note") or "")))
    longest = max(sizes.encoder_lengths)
    for target in target_rows(measured, longest):
        rows.append(row("encoder", f"n={longest} train", "hstu vs transformer", "bf16", str(target["target"]),
                        target["measured"], "", str(target["required"]), str(target["status"])))
    return rows


def training_rows(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    """bf16 training steps of the one training path and their MFU against the device's bf16 peak."""
    import torch

    from scaling.benchmarks.training import time_training_steps
    from scaling.mfu import device_peak, utilisation
    from scaling.train import build_run

    peak = device_peak(torch.device(config.device), "bf16")
    progress(f"bf16 peak {peak.flops_per_s / 1e12:.1f} TFLOP/s ({peak.source})")
    rows = []
    for case, target in training_cases(config):
        run = build_run(case.config)
        times = time_training_steps(run, config.sizes.train_steps, config.sizes.warmup_steps)
        measured_utilisation = utilisation(times.flops, times.wall, peak)
        achieved, mfu = measured_utilisation["train_flops_per_s"], measured_utilisation["mfu"]
        progress(f"{case.name}: {times.steps} steps, {achieved / 1e12:.2f} TFLOP/s, MFU {mfu:.1%}")
        impl = f"{case.config.model.name} ({run.precision.name}, attention {case.config.model.attention_backend})"
        measured = {"tokens/s": times.units / times.wall, "step ms": 1000 * times.wall / max(times.steps, 1),
                    "TFLOP/s": achieved / 1e12}
        rows += [row("training", case.name, impl, "bf16", metric, None if config.dry_run else value, metric)
                 for metric, value in measured.items()]
        rows.append(row("training", case.name, impl, "bf16", "MFU", None if config.dry_run else mfu, "of peak",
                        f">= {target:g}" if target else "", status(None if config.dry_run else mfu, ">=", target)
                        if target else "", note=f"{case.source}; peak {peak.source}"))
    return rows


def training_cases(config: GpuCheckConfig):
    """(case, MFU target or None): the Table-4-shaped HSTU (ML-1M's size: 8 layers, 2 heads, d=50, n=200, batch
    128) and HSTU at d=512, n=2048, whose MFU has the issue's target.

    A dry run keeps the shapes but trains on a few users in batches of ``table4_batch`` sequences.
    """
    from scaling.benchmarks.training import BenchCase
    from scaling.config import load_run_config

    sizes = config.sizes
    common = [f"train.device={config.device}", "train.precision=bf16", f"seed={config.seed}", "data.dataset=synthetic-dp"]
    table4 = load_run_config(None, [
        *common, "name=gpu-check-table4", "model.name=hstu", "model.num_layers=8", "model.num_heads=2",
        "model.embedding_dim=50", "model.dropout=0.2", "data.max_seq_len=200", f"train.batch_size={sizes.table4_batch}",
        "train.num_negatives=128", "data.synthetic_dp.num_items=3706", "data.synthetic_dp.num_categories=18",
        f"data.synthetic_dp.num_records={sizes.table4_records}", "data.synthetic_dp.record_length=165",
    ])
    heads = 8 if sizes.long_dim >= 64 else 2
    long = load_run_config(None, [
        *common, "name=gpu-check-long", "model.name=hstu", "model.num_layers=4", f"model.num_heads={heads}",
        f"model.embedding_dim={sizes.long_dim}", "model.dropout=0.0", f"data.max_seq_len={sizes.long_length}",
        "train.batch_size=16", "train.num_negatives=128", "data.synthetic_dp.num_items=20000",
        f"data.synthetic_dp.num_records={sizes.long_records}", f"data.synthetic_dp.record_length={sizes.long_length + 2}",
    ])
    return ((BenchCase("table4-shaped (ml-1m size)", table4, "hstu-large of sweeps/table4.yaml on synthetic-dp"), None),
            (BenchCase(f"d={sizes.long_dim} n={sizes.long_length}", long, "4 layers, batch 16 sequences, synthetic-dp"),
             MFU_TARGET))


def mfalcon_rows(config: GpuCheckConfig, timer: Timer, progress: Progress) -> list[dict[str, object]]:
    import torch

    from scaling.benchmarks.serving import BenchSetup, device_rows

    sizes = config.sizes
    setup = BenchSetup(sizes.mfalcon_size, sizes.mfalcon_history, "auto")
    results = device_rows(setup, torch.device(config.device), list(sizes.mfalcon_candidates),
                          list(sizes.mfalcon_microbatches), naive_sample=2 if config.dry_run else 8,
                          repeats=1 if config.dry_run else 3, progress=progress)
    rows = []
    for result in results:
        case = f"{sizes.mfalcon_size} n={sizes.mfalcon_history} m={result['candidates']} b_m={result['microbatch'] or '-'}"
        timed = not config.dry_run
        rows.append(row("mfalcon", case, str(result["path"]), "fp32", "candidates/s",
                        result["candidates_per_s"] if timed else None, "1/s", note=str(result["timing"])))
        rows.append(row("mfalcon", case, str(result["path"]), "fp32", "x naive",
                        result["speedup_vs_naive"] if timed else None, "x"))
        if result["max_abs_diff"] != "":
            rows.append(row("mfalcon", case, str(result["path"]), "fp32", "max logit diff vs other paths",
                            result["max_abs_diff"]))
    return rows
