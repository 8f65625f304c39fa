"""Where CPU training time goes: throughput, achieved FLOP/s against the measured matmul peak, phase split.

For each benchmarked model a run is built with :func:`scaling.train.build_run` from a sweep's
trial config (by default the quickstart's largest HSTU and DCN-v2, and SASRec at the HSTU's
size). Then, on that run:

* training steps are taken by ``scaling.train.take_step``, the function training calls, on the batches the regime's first pass visits (the first streaming windows in time
  order, or a shuffled epoch), with a clock between the phases:
  data (the next batch, Stochastic Length, its workload, the move to the device), forward (the
  objective's loss), backward (zero_grad, backward) and optimizer (the AdamW step and the step's
  bookkeeping: the analytic FLOPs count and reading the loss). The first ``warmup_steps`` are
  not timed. The steps' wall time is also taken by an outer clock, independently of the phases;
* one evaluation of the run's validation events is timed (``scaling.train.evaluate``);
* a large fp32 matmul at the same thread count gives the machine's peak FLOP/s (best of a few;
  :func:`scaling.mfu.matmul_peak_flops`, the peak every CPU trial's MFU is measured against).

Achieved GFLOP/s is the analytic training FLOPs of the timed steps (``scaling/flops.py``:
3 x the model's forward formula) over their outer-clock wall time. The phase split is that of
one whole trial of the config, projected from the measured per-step phases and evaluation time
per target onto the trial's schedule (:func:`trial_schedule`: how many steps the passes of
``scaling.train.training_passes`` take, how many targets its evaluations score), so evaluation
weighs what it weighs in a real trial. The batches, the step and the evaluation set are
``scaling/train.py``'s own, so the benchmark times what a trial runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from core.configtools import apply_overrides, to_dict
from core.errors import UserError
from model.catalogue import model_spec
from model.flops import SequenceWorkload
from model.params import parameter_counts
from scaling.config import RunConfig, run_config_from_dict
from scaling.mfu import MATMUL_SIZE, matmul_peak_flops
from scaling.train import EvaluationSet, Run, build_run, evaluate, take_step, testing_events, training_passes, validation_set

PHASES = ("data", "forward", "backward", "optimizer")

RESULT_COLUMNS = (
    "model", "threads", "params", "steps", "units", "gflop", "throughput", "unit", "gflop_per_s", "peak_gflop_per_s",
    "peak_fraction", "step_ms", *(f"{phase}_ms" for phase in PHASES), "eval_s", "eval_targets",
    "trial_steps", "trial_eval_targets", "trial_s", *(f"{phase}_share" for phase in (*PHASES, "eval")),
)
TABLE_COLUMNS = (
    "model", "threads", "steps", "throughput", "unit", "gflop_per_s", "peak_fraction", "step_ms",
    *(f"{phase}_share" for phase in (*PHASES, "eval")), "trial_s",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchCase:
    """One row of the benchmark: a label, the run config it builds and where that config comes from."""

    name: str
    config: RunConfig
    source: str


@dataclass(frozen=True)
class TrainBenchConfig:
    cases: tuple[BenchCase, ...]
    steps: int  # timed training steps per case
    warmup_steps: int  # untimed steps before them
    threads: int  # torch CPU threads (the sweep gives each trial resources.cpu threads)


@dataclass
class StepTimes:
    """Seconds spent in each phase over the timed steps, and what those steps trained on."""

    steps: int = 0
    wall: float = 0.0  # outer clock: start of the first timed step to the end of the last
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    units: int = 0  # tokens (sequence models) or impressions (DLRMs) trained on
    flops: float = 0.0  # analytic training FLOPs (3 x forward)


@dataclass(frozen=True)
class TrialSchedule:
    """What one whole trial of a run config does: optimizer steps and targets scored by evaluations."""

    steps: int  # at most: early stopping (multi_epoch patience) may end a trial sooner
    validations: int  # evaluations recorded in the history
    eval_targets: int  # targets scored by every evaluation together (validations, progressive, test)


# --- the cases --------------------------------------------------------------------------------


def sweep_cases(sweep_file: Path) -> dict[str, BenchCase]:
    """Each group's largest trial (its last axis point, first seed), plus SASRec at the HSTU's size.

    A sweep's zipped size axes grow from first to last point, so the last point is the largest.
    """
    from scaling.sweep.expand import expand_sweep
    from scaling.sweep.spec import load_sweep

    trials = expand_sweep(load_sweep(sweep_file), sweep_file)
    cases: dict[str, BenchCase] = {}
    for group in dict.fromkeys(trial.group for trial in trials):
        points = [trial for trial in trials if trial.group == group]
        largest = next(trial for trial in points if trial.point == points[-1].point)  # the first seed of the last point
        cases[group] = BenchCase(group, largest.config, f"{sweep_file.name} group '{group}' {largest.point}")
    if "hstu" in cases and "sasrec" not in cases:
        hstu = cases["hstu"].config
        sasrec = replace(hstu, name=hstu.name.replace("hstu", "sasrec"), model=replace(hstu.model, name="sasrec"))
        cases["sasrec"] = BenchCase("sasrec", sasrec, f"{sweep_file.name}: the 'hstu' case with model.name=sasrec")
    return cases


def select_cases(sweep_file: Path, names: Sequence[str], overrides: Sequence[str] = ()) -> tuple[BenchCase, ...]:
    """The cases ``names`` of :func:`sweep_cases` in that order, each with the run-config ``key=value``
    ``overrides`` applied (validated like any run config); a one-line error names unknown cases."""
    cases = sweep_cases(sweep_file)
    unknown = [name for name in names if name not in cases]
    if unknown:
        raise UserError(f"--models: {', '.join(unknown)} not in {sweep_file.name}; choose from {', '.join(cases)}")
    if not overrides:
        return tuple(cases[name] for name in names)
    return tuple(replace(cases[name], config=run_config_from_dict(apply_overrides(to_dict(cases[name].config), overrides)),
                         source=f"{cases[name].source}, then --set {' '.join(overrides)}")
                 for name in names)


# --- measurements -----------------------------------------------------------------------------


def training_batches(run: Run) -> Iterator[Any]:
    """The batches the run's training passes visit, in their order (:func:`scaling.train.training_passes`)."""
    for training_pass in training_passes(run):
        chunks = run.batcher.chunks(training_pass.events)
        yield from run.batcher.batches(chunks, run.config.train.batch_size, training_pass.order, run.shuffle_rng)


def time_training_steps(run: Run, steps: int, warmup_steps: int) -> StepTimes:
    """Take ``warmup_steps`` untimed then ``steps`` timed training steps as ``scaling.train._steps`` does."""
    run.model.train()
    batches = training_batches(run)
    for _ in range(warmup_steps):
        if _take_step(run, batches, StepTimes()) is None:
            raise UserError(f"{run.config.name}: the trial has fewer than {warmup_steps} warm-up steps; lower --warmup")
    times = StepTimes()
    started = _now(run.device)
    while times.steps < steps and _take_step(run, batches, times) is not None:
        pass
    times.wall = _now(run.device) - started
    return times


def _take_step(run: Run, batches: Iterator[Any], times: StepTimes) -> float | None:
    """One step of ``scaling.train.take_step``, its phases added to ``times``; None when the batches ran out."""
    clock = _now(run.device)
    batch = next(batches, None)
    if batch is None:
        return None

    def lap(phase: str) -> None:
        nonlocal clock
        now = _now(run.device)
        times.phases[phase] += now - clock
        clock = now

    flops_before = run.flops
    value, workload = take_step(run, batch, lap)
    times.steps += 1
    times.flops += run.flops - flops_before
    times.units += workload.num_tokens if isinstance(workload, SequenceWorkload) else workload.num_impressions
    return value


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def time_evaluation(run: Run, validation: EvaluationSet) -> float:
    """Seconds of one evaluation of ``validation`` (the run's validation set) by ``scaling.train.evaluate``."""
    started = _now(run.device)
    evaluate(run, validation.chunks)
    return _now(run.device) - started


def trial_schedule(run: Run, validation_targets: int | None = None) -> TrialSchedule:
    """Steps and evaluated targets of one whole trial of ``run.config`` (no FLOPs or wall-time budget);
    ``validation_targets``: the size of the run's validation set, when the caller has built it already."""
    config = run.config
    if validation_targets is None:
        validation_targets = validation_set(run).num_targets
    passes = training_passes(run)
    steps = sum(math.ceil(_num_chunks(run.batcher.chunks(p.events)) / config.train.batch_size) for p in passes)
    validating = [p for p in passes if p.validates]
    progressive = sum(len(p.progressive) for p in validating if p.progressive is not None)
    targets = len(validating) * validation_targets + progressive + len(testing_events(run))
    if config.train.max_steps is not None:
        steps = min(steps, config.train.max_steps)
    return TrialSchedule(steps, len(validating), targets)


def _num_chunks(chunks: Any) -> int:
    """Sequence chunks (windows of a user's tokens) or impressions a pass batches."""
    return len(chunks.events) if hasattr(chunks, "events") else len(chunks.start)


# --- the rows ---------------------------------------------------------------------------------


def bench_row(case: BenchCase, run: Run, times: StepTimes, evaluation: tuple[float, int], schedule: TrialSchedule,
              peak_gflops: float, threads: int) -> dict[str, object]:
    """One table row: throughput, GFLOP/s and its fraction of the peak, per-step phases and the trial's split."""
    eval_seconds, eval_targets = evaluation
    per_step = {phase: seconds / times.steps for phase, seconds in times.phases.items()}
    trial_phases = {phase: seconds * schedule.steps for phase, seconds in per_step.items()}
    trial_phases["eval"] = eval_seconds / max(eval_targets, 1) * schedule.eval_targets
    trial_seconds = sum(trial_phases.values())
    gflops = times.flops / times.wall / 1e9
    sequences = model_spec(case.config.model.name).input == "sequence"
    return {
        "model": case.name,
        "threads": threads,
        "params": parameter_counts(run.model)["total"],
        "steps": times.steps,
        "units": times.units,
        "gflop": times.flops / 1e9,
        "throughput": times.units / times.wall,
        "unit": "tokens/s" if sequences else "impressions/s",
        "gflop_per_s": gflops,
        "peak_gflop_per_s": peak_gflops,
        "peak_fraction": gflops / peak_gflops,
        "step_ms": 1000 * times.wall / times.steps,
        **{f"{phase}_ms": 1000 * seconds for phase, seconds in per_step.items()},
        "eval_s": eval_seconds,
        "eval_targets": eval_targets,
        "trial_steps": schedule.steps,
        "trial_eval_targets": schedule.eval_targets,
        "trial_s": trial_seconds,
        **{f"{phase}_share": seconds / trial_seconds for phase, seconds in trial_phases.items()},
    }


def bench_case(case: BenchCase, config: TrainBenchConfig, peak_gflops: float, progress: Progress) -> dict[str, object]:
    started = time.perf_counter()
    run = build_run(case.config)
    progress(f"{case.name}: built in {time.perf_counter() - started:.1f} s ({case.source}); "
             f"{config.warmup_steps} warm-up + {config.steps} timed steps")
    times = time_training_steps(run, config.steps, config.warmup_steps)
    if times.steps == 0:
        raise UserError(f"{case.name}: no training step left after the warm-up; lower --warmup")
    progress(f"{case.name}: {times.steps} steps in {times.wall:.1f} s; timing one evaluation")
    validation = validation_set(run)
    evaluation = time_evaluation(run, validation), validation.num_targets
    return bench_row(case, run, times, evaluation, trial_schedule(run, validation.num_targets), peak_gflops,
                     config.threads)


def run_training_benchmark(config: TrainBenchConfig, progress: Progress) -> tuple[float, list[dict[str, object]]]:
    """(the measured matmul peak in GFLOP/s, one row per case) at ``config.threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        peak = matmul_peak_flops() / 1e9  # fp32, best of MATMUL_REPEATS, as trials measure their CPU peak
        progress(f"fp32 matmul peak ({MATMUL_SIZE}^3, {config.threads} thread(s)): {peak:.1f} GFLOP/s")
        rows = []
        for case in config.cases:
            rows.append(bench_case(case, config, peak, progress))
        return peak, rows
    finally:
        torch.set_num_threads(previous)

