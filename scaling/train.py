"""The one training path: ``train(config) -> result``, used by ``scaling train`` and by sweep trials.

``build_run`` loads the data, builds its token streams, the model and the task's objective.
Two regimes then drive AdamW steps over chunks of token sequences:

* ``multi_epoch``: shuffled epochs over each user's training targets; validation every
  ``train.eval_every`` epochs keeps the best checkpoint (``eval.selection_metric``) and stops
  after ``train.patience`` validations without improvement; test metrics come from the best
  checkpoint.
* ``streaming``: one pass in time order over windows 0 .. W - 3; every ``train.eval_every``
  windows the model is scored on the held-out window W - 2, the same events at every evaluation
  (so a learning curve and a compute frontier compare like with like; ``eval.max_users`` keeps a
  fixed sample of its users, drawn from the data alone, to make evaluation cheaper); the best checkpoint on
  it is tested on window W - 1. With ``eval.progressive`` the model is also scored on the next,
  not yet trained window (progressive validation, recorded apart as ``progressive``).

Each evaluation is appended to the history, with the identifier of the set it was scored on
(``eval_set``) and, where the data know their true action probabilities, the oracle's metrics on
that same set; it is passed to an optional callback (the sweep runner reports it to Ray Tune).
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from model.inputs import Vocabulary
from model.params import parameter_counts
from model.catalogue import model_spec
from model.registry import ModelInputs, build_model
from scaling.compilation import compile_dense_layers
from scaling.config import RunConfig
from core.configtools import to_dict
from scaling.data.batching import SequenceBatch, SequenceBatcher
from scaling.data.impressions import ImpressionBatcher
from scaling.data.sequences import SequenceDataset
from scaling.data.splits import (
    LeaveOneOutEvents, evaluation_set_id, leave_one_out_events, sample_users, streaming_windows,
)
from scaling.data.stochastic_length import LengthTally, TargetTally, stochastic_length
from scaling.data.tokens import build_token_stream
from core.errors import DataError, UserError
from scaling.flops import Workload, pf_days, training_step_flops, training_workload
from scaling.metrics import higher_is_better, oracle_ranking_metrics
from scaling.mfu import device_peak, utilisation
from scaling.objectives import (
    ImpressionRankingObjective, Objective, RankingObjective, RetrievalObjective, base_rate_logits,
)
from core.files import write_json_atomic
from scaling.divergence import DivergenceWatch, TrainingDiverged  # noqa: F401  (what a diverging run raises)
from scaling.precision import MixedPrecision

if TYPE_CHECKING:
    from scaling.checkpoint import Checkpoints
    from scaling.distributed import DataParallel

EvaluationCallback = Callable[[dict[str, Any]], None]
STOCHASTIC_LENGTH_STREAM = 5  # names the random stream of Stochastic Length among those seeded by config.seed


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("config key 'train.device': 'cuda' was requested but no CUDA device is available")
    return torch.device(requested)


def default_selection_metric(task: str) -> str:
    return "ne" if task == "ranking" else "ndcg@10"


@dataclass
class Run:
    """Everything one training run works with, built once by :func:`build_run`."""

    config: RunConfig
    device: torch.device
    dataset: SequenceDataset
    batcher: SequenceBatcher | ImpressionBatcher
    split: LeaveOneOutEvents | list[np.ndarray]  # multi_epoch targets, or streaming windows' targets
    model: nn.Module
    optimizer: torch.optim.Optimizer
    objective: Objective
    negatives_generator: torch.Generator
    shuffle_rng: np.random.Generator
    selection_metric: str
    precision: MixedPrecision  # autocast dtype of forward and loss, fp16's loss scaler (train.precision)
    parallel: DataParallel | None = None  # this worker's share of each step, with several workers (scaling/distributed.py)
    started: float = field(default_factory=time.perf_counter)
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    passes: int = 0  # training passes completed (epochs, or streaming windows)
    train_wall_seconds: float = 0.0  # inside training passes only (no evaluation)
    train_cpu_seconds: float = 0.0  # process CPU time (all threads) inside training passes
    trained_lengths: LengthTally = field(default_factory=LengthTally)  # sequences trained on (after SL), whole run
    lengths_since_record: LengthTally = field(default_factory=LengthTally)  # the same since the last history entry
    trained_targets: TargetTally = field(default_factory=TargetTally)  # supervised tokens kept by SL, whole run
    divergence: DivergenceWatch = field(default_factory=DivergenceWatch)  # losses seen, to tell divergence

    flops: float = 0.0  # cumulative training FLOPs, 3 x analytic forward per step (scaling/flops.py)

    def out_of_budget(self) -> bool:
        """True once the step, FLOPs or wall-time budget is used up (epochs are the loop's own bound)."""
        budget = self.config.train
        out_of_time = budget.max_wall_seconds is not None and time.perf_counter() - self.started >= budget.max_wall_seconds
        if budget.max_wall_seconds is not None and self.parallel is not None:
            out_of_time = self.parallel.any(out_of_time)  # workers' clocks differ; they must stop together
        return (
            (budget.max_steps is not None and self.step >= budget.max_steps)
            or (budget.max_flops is not None and self.flops >= budget.max_flops)
            or out_of_time
        )


def build_run(config: RunConfig, dataset: SequenceDataset | None = None, parallel: DataParallel | None = None) -> Run:
    """Everything a run needs; ``dataset`` is data already in memory (tests), else ``config.data`` is loaded.

    With ``parallel`` this worker trains its share of each step on the process group's device."""
    started = time.perf_counter()
    device = parallel.device if parallel is not None else resolve_device(config.train.device)
    task = config.data.task  # a RunConfig has passed scaling.config.check_model_fits_run: the model can train on it
    torch.manual_seed(config.seed)
    shuffle_rng = np.random.default_rng(config.seed + 2)
    if dataset is None:
        from scaling.data.loading import load_dataset

        dataset = load_dataset(config.data)
    impressions = model_spec(config.model.name).input == "impressions"
    batcher, inputs = _impression_setup(config, dataset) if impressions else _sequence_setup(config, dataset)
    split = _target_split(config, dataset, batcher)
    # Statistics that need data (feature scaling, base rates) come from training targets only.
    first_training = split.train if isinstance(split, LeaveOneOutEvents) else split[0]
    if isinstance(batcher, ImpressionBatcher):
        batcher.fit_standardizer(first_training, shuffle_rng)
    objective = _objective(config, dataset, batcher, first_training, impressions)
    model = build_model(config.model, task, inputs).to(device)
    optimizer = build_optimizer(model, config)
    if config.train.compile:
        compile_dense_layers(model)  # in place: parameters, state_dict keys and the optimizer stay the module's
    if parallel is not None:
        parallel.attach(model)  # DDP around the module; run.model stays the module (state_dict keys unchanged)
    return Run(
        config=config,
        device=device,
        dataset=dataset,
        batcher=batcher,
        split=split,
        model=model,
        optimizer=optimizer,
        objective=objective,
        negatives_generator=torch.Generator(device=device).manual_seed(config.seed + 1),
        shuffle_rng=shuffle_rng,
        selection_metric=config.eval.selection_metric or default_selection_metric(task),
        precision=MixedPrecision(config.train.precision, device),
        started=started,
        parallel=parallel,
    )


def build_optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """AdamW with its fused kernel, on CPU as on CUDA: one vectorised pass over every parameter.

    PyTorch's default on CPU is the per-tensor loop, a Python call per parameter per step (its
    foreach variant loops too on CPU); the fused kernel takes the quickstart's step 3-4 x faster
    and computes the same update up to float rounding (the order of a few operations differs).
    """
    return torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay,
                             betas=(0.9, 0.98), fused=True)


def _vocabulary(config: RunConfig, dataset: SequenceDataset) -> Vocabulary:
    interleaved = config.data.task != "retrieval"
    return Vocabulary(
        num_items=dataset.num_items,
        max_seq_len=config.data.max_seq_len,
        num_action_tokens=dataset.num_action_tokens if interleaved else 0,
        num_context_tokens=dataset.contexts.num_tokens if interleaved and dataset.contexts is not None else 0,
        task_names=dataset.task_names if config.data.task == "ranking" else (),
    )


def _sequence_setup(config: RunConfig, dataset: SequenceDataset) -> tuple[SequenceBatcher, ModelInputs]:
    stream = build_token_stream(dataset, config.data.task, config.data.positive_task)
    batcher = SequenceBatcher(dataset, stream, config.data.max_seq_len)
    categories = torch.from_numpy(dataset.item_categories) if dataset.item_categories is not None else None
    return batcher, ModelInputs(_vocabulary(config, dataset), item_categories=categories)


def _impression_setup(config: RunConfig, dataset: SequenceDataset) -> tuple[ImpressionBatcher, ModelInputs]:
    if not dataset.has_actions:
        raise DataError(f"model '{config.model.name}' ranks impressions by their actions, but dataset "
                        f"'{config.data.dataset}' has no ratings or action events")
    batcher = ImpressionBatcher(dataset, config.model.dlrm.history_len)
    return batcher, ModelInputs(_vocabulary(config, dataset), features=batcher.spec)


def _objective(config: RunConfig, dataset: SequenceDataset, batcher, training_events: np.ndarray, impressions: bool) -> Objective:
    if config.data.task != "ranking":
        return RetrievalObjective(config.train.num_negatives, config.train.temperature, batcher, config.eval.exclude_history)
    prior = base_rate_logits(torch.from_numpy(dataset.labels[training_events]))
    kind = ImpressionRankingObjective if impressions else RankingObjective
    return kind(dataset.task_names, prior)


def _target_split(config: RunConfig, dataset: SequenceDataset, batcher) -> LeaveOneOutEvents | list[np.ndarray]:
    if config.train.regime == "streaming":
        return streaming_windows(dataset, batcher.supervisable(), config.train.num_windows)
    return leave_one_out_events(dataset, batcher.supervisable())


def train_pass(run: Run, chunks: Any, order: str, progress: tqdm | None) -> float:
    """One pass of AdamW steps over ``chunks``; returns the mean training loss."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return _steps(run, chunks, order, progress)
    finally:
        run.passes += 1
        run.train_wall_seconds += time.perf_counter() - wall
        run.train_cpu_seconds += time.process_time() - cpu


def _steps(run: Run, chunks: Any, order: str, progress: tqdm | None) -> float:
    losses = []
    run.model.train()
    for batch in run.batcher.batches(chunks, run.config.train.batch_size, order, run.shuffle_rng):
        value, _ = take_step(run, batch)
        losses.append(value)
        if progress is not None:
            progress.set_postfix_str(f"step {run.step} loss {value:.4f}", refresh=False)
        if run.out_of_budget():
            break
    return float(np.mean(losses)) if losses else float("nan")


def _no_lap(phase: str) -> None:
    """The default phase clock of :func:`take_step`: training times nothing."""


def take_step(run: Run, batch: Any, lap: Callable[[str], None] = _no_lap) -> tuple[float, Workload]:
    """One optimizer step on ``batch``; counts its FLOPs and returns its loss and the work it trained on.

    ``lap(phase)`` is called as each phase ends (data, forward, backward, optimizer), so a benchmark
    times the very step training takes (``scaling bench train``).
    """
    batch = shorten(run, batch)  # before FLOPs accounting: count the sequences actually trained on
    negatives = run.objective.sample_negatives(run.model, batch, run.negatives_generator)  # on run.device
    workload = training_workload(batch, run.config, negatives)  # the global batch: every worker's work
    model, weight = run.model, None
    if run.parallel is not None:
        batch, negatives, weight = run.parallel.shard(batch, negatives)
        model = run.parallel.replica
    batch = batch.to(run.device)
    lap("data")
    with run.precision.autocast():
        loss = run.objective.loss(model, batch, negatives)
        if weight is not None:
            loss = loss * weight  # DDP's gradient average is then the global batch's (scaling/distributed.py)
    lap("forward")
    run.optimizer.zero_grad(set_to_none=True)
    run.precision.backward(loss)
    lap("backward")
    run.precision.step(run.optimizer)
    run.step += 1
    run.flops += training_step_flops(run.model, workload)
    value = loss.item() if run.parallel is None else run.parallel.global_loss(loss)
    lap("optimizer")
    run.divergence.check_step(value, run.step)
    return value, workload


def shorten(run: Run, batch: Any) -> Any:
    """Stochastic Length (Eq. 4) on a training batch, seeded by (seed, step); tallies the lengths trained on."""
    if not isinstance(batch, SequenceBatch):
        return batch  # impressions (DLRM baselines) have no token sequences to shorten
    settings = run.config.train.stochastic_length
    if settings.alpha is not None:
        rng = np.random.default_rng((run.config.seed, STOCHASTIC_LENGTH_STREAM, run.step))
        shortened = stochastic_length(batch, run.config.data.max_seq_len, settings.alpha, settings.selection, rng)
        run.trained_targets.add(batch, shortened)
        batch = shortened
    for tally in (run.trained_lengths, run.lengths_since_record):
        tally.add(batch.sequences.offsets)
    return batch


def evaluate(run: Run, chunks: Any) -> dict[str, float]:
    """The objective's metrics on ``chunks``; with several workers, scored once by rank 0 and shared."""
    if run.parallel is not None:
        return run.parallel.on_first_worker(lambda: _evaluate_here(run, chunks))
    return _evaluate_here(run, chunks)


def _evaluate_here(run: Run, chunks: Any) -> dict[str, float]:
    run.model.eval()
    batches = run.batcher.batches(chunks, run.config.eval.batch_size, "time")
    metrics = run.objective.evaluate(run.model, batches, run.device)
    run.model.train()
    return metrics


@dataclass(frozen=True)
class EvaluationSet:
    """The fixed events a run's evaluations are scored on, named so that comparable rows can be found."""

    chunks: Any
    identifier: str  # label:digest (scaling.data.splits.evaluation_set_id)
    oracle: dict[str, float]  # the true probabilities' metrics on these events (synthetic data), else empty
    num_targets: int  # events scored


@dataclass(frozen=True)
class TrainingPass:
    """One pass of a trial's schedule: what it trains on, in which order, and what follows it."""

    events: np.ndarray  # target events trained on
    order: str  # batch order: "time" (streaming) or "shuffle" (epochs)
    validates: bool  # a validation follows (every train.eval_every-th pass and the last; also where a budget ends)
    progressive: np.ndarray | None  # the next window, scored after this pass's validation (eval.progressive)


def training_passes(run: Run) -> list[TrainingPass]:
    """The trial's passes in order: windows 0 .. W - 3 in time order (streaming), or the training split
    shuffled once per epoch (multi_epoch). Early stopping and budgets may end a trial sooner."""
    config, split = run.config, run.split
    if isinstance(split, LeaveOneOutEvents):
        epochs = config.train.epochs
        return [TrainingPass(split.train, "shuffle", _validates_after(config, epoch, epochs), None)
                for epoch in range(1, epochs + 1)]
    holdout = len(split) - 2
    progressive = config.eval.progressive
    return [TrainingPass(split[window], "time", _validates_after(config, window + 1, holdout),
                         split[window + 1] if progressive and window + 1 < holdout else None)
            for window in range(holdout)]


def _validates_after(config: RunConfig, passes_done: int, total: int) -> bool:
    return passes_done % config.train.eval_every == 0 or passes_done == total


def validation_set(run: Run) -> EvaluationSet:
    """The fixed set every validation of the run scores: leave-one-out validation targets, or held-out window W - 2."""
    split = run.split
    if isinstance(split, LeaveOneOutEvents):
        return evaluation_set(run, split.valid, "leave-one-out-valid")
    holdout = len(split) - 2
    return evaluation_set(run, split[holdout], f"holdout-window-{holdout + 1}-of-{len(split)}")


def testing_events(run: Run) -> np.ndarray:
    """The events the best checkpoint is tested on: leave-one-out test targets, or the last window."""
    return run.split.test if isinstance(run.split, LeaveOneOutEvents) else run.split[-1]


def evaluation_set(run: Run, events: np.ndarray, label: str) -> EvaluationSet:
    """The validation set of ``events``, cut to ``eval.max_users`` users' events: its chunks, identifier and
    (when the data know them) the oracle's metrics."""
    dataset = run.dataset
    max_users = run.config.eval.max_users
    sampled = sample_users(dataset, run.config.data.task, events, max_users)
    if len(sampled) < len(events):
        events, label = sampled, f"{label}-{max_users}-users"
    oracle: dict[str, float] = {}
    if run.config.data.task == "ranking" and dataset.oracle_probabilities is not None:
        oracle = oracle_ranking_metrics(dataset.oracle_probabilities[events], dataset.labels[events], dataset.task_names)
    identifier = evaluation_set_id(dataset, run.config.data.task, events, label)
    return EvaluationSet(run.batcher.chunks(events), identifier, oracle, len(events))


def record(run: Run, metrics: dict[str, float], train_loss: float, on_evaluation: EvaluationCallback | None,
           scored_on: EvaluationSet, **where: Any) -> None:
    entry = {**where, "step": run.step, "train_loss": train_loss, "eval_set": scored_on.identifier,
             **({"oracle": scored_on.oracle} if scored_on.oracle else {}),
             "elapsed_seconds": time.perf_counter() - run.started, "flops": run.flops, "pf_days": pf_days(run.flops),
             "params": parameter_counts(run.model), "valid": metrics,
             # Table 3's sparsity and s2 of the sequences trained on since the previous entry
             **run.lengths_since_record.sparsity(run.config.data.max_seq_len).as_dict()}
    run.lengths_since_record = LengthTally()
    run.history.append(entry)
    if on_evaluation is not None:
        on_evaluation(entry)
    run.divergence.check_validation(metrics, run.step)  # after the report: the diverged evaluation is kept


def _selection_score(metrics: dict[str, float], metric: str) -> float:
    if metric not in metrics:
        raise UserError(f"config key 'eval.selection_metric': {metric!r} is not a metric; choose one of {', '.join(metrics)}")
    value = metrics[metric]
    if math.isnan(value):
        return -math.inf
    return value if higher_is_better(metric) else -value


class BestCheckpoint:
    """The best model state so far on the selection metric, and the evaluation it came from."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.score, self.state, self.valid, self.where, self.stale = -math.inf, None, {}, None, 0

    def offer(self, run: Run, valid: dict[str, float], where: Any) -> None:
        score = _selection_score(valid, self.metric)
        if score > self.score or self.state is None:
            self.score, self.valid, self.where, self.stale = score, valid, where, 0
            self.state = copy.deepcopy(run.model.state_dict())
        else:
            self.stale += 1

    def restore(self, run: Run) -> None:
        if self.state is not None:
            run.model.load_state_dict(self.state)


def run_multi_epoch(run: Run, best: BestCheckpoint, on_evaluation: EvaluationCallback | None, progress: bool,
                    checkpoints: Checkpoints | None = None) -> tuple[dict, dict, dict[str, Any]]:
    """Leave-one-out with shuffled epochs, early stopping and best-checkpoint test metrics.

    Epochs start after ``run.passes`` (those of a restored checkpoint are done)."""
    config = run.config
    split = run.split
    passes = training_passes(run)
    train_chunks = run.batcher.chunks(split.train)  # every epoch trains on the same events
    validation = validation_set(run)
    bar = tqdm(range(run.passes + 1, config.train.epochs + 1), desc=config.name, unit="epoch", disable=not progress)
    for epoch in bar:
        this_pass = passes[epoch - 1]
        loss = train_pass(run, train_chunks, this_pass.order, bar)
        if not this_pass.validates and not run.out_of_budget():
            continue
        valid = evaluate(run, validation.chunks)
        record(run, valid, loss, on_evaluation, validation, epoch=epoch)
        best.offer(run, valid, epoch)
        bar.set_postfix(loss=f"{loss:.4f}", **{run.selection_metric: f"{valid[run.selection_metric]:.4f}"})
        stop = bool(config.train.patience and best.stale >= config.train.patience) or run.out_of_budget()
        if checkpoints is not None:
            checkpoints.evaluated(run, best, final=stop or epoch == config.train.epochs)
        if stop:
            break
    bar.close()
    best.restore(run)
    test = evaluate(run, run.batcher.chunks(testing_events(run)))
    details = {"best_epoch": best.where, "eval_set": validation.identifier,
               "split_targets": {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}}
    return best.valid, test, details


def run_streaming(run: Run, best: BestCheckpoint, on_evaluation: EvaluationCallback | None, progress: bool,
                  checkpoints: Checkpoints | None = None) -> tuple[dict, dict, dict[str, Any]]:
    """One pass over windows 0 .. W - 3, each evaluation on held-out window W - 2, the best checkpoint tested on W - 1.

    Windows start at ``run.passes`` (those of a restored checkpoint are trained on)."""
    windows = run.split
    passes = training_passes(run)
    holdout = len(passes)
    validation = validation_set(run)
    upcoming = None  # the next window's chunks when progressive validation built them: trained on as they are
    bar = tqdm(range(run.passes, holdout), desc=run.config.name, unit="window", disable=not progress)
    for window in bar:
        this_pass = passes[window]
        chunks = upcoming if upcoming is not None else run.batcher.chunks(this_pass.events)
        upcoming = None
        loss = train_pass(run, chunks, this_pass.order, bar)
        stop = run.out_of_budget()
        if this_pass.validates or stop:
            valid = evaluate(run, validation.chunks)
            extra = {}
            if this_pass.progressive is not None:
                upcoming = run.batcher.chunks(this_pass.progressive)
                extra["progressive"] = evaluate(run, upcoming)
            record(run, valid, loss, on_evaluation, validation, window=window, epoch=(window + 1) / holdout, **extra)
            best.offer(run, valid, window)
            if run.selection_metric in valid:
                bar.set_postfix(loss=f"{loss:.4f}", **{run.selection_metric: f"{valid[run.selection_metric]:.4f}"})
            if checkpoints is not None:
                checkpoints.evaluated(run, best, final=stop or window == holdout - 1)
        if stop:
            break
    bar.close()
    best.restore(run)
    test = evaluate(run, run.batcher.chunks(testing_events(run)))
    details = {"best_window": best.where, "eval_set": validation.identifier,
               "window_targets": [len(w) for w in windows]}
    return best.valid, test, details


def train(config: RunConfig, out_dir: Path | None = None, on_evaluation: EvaluationCallback | None = None,
          progress: bool = True, checkpoints: Checkpoints | None = None,
          parallel: DataParallel | None = None) -> dict[str, Any]:
    """Train and evaluate ``config``; return (and write to ``out_dir/result.json``) the results record.

    With ``checkpoints`` the run continues from the last state saved there, and offers a state after
    every evaluation (:mod:`scaling.checkpoint`). With ``parallel`` this is one of several workers
    training it data-parallel (:mod:`scaling.distributed`); each returns the same record."""
    run = build_run(config, parallel=parallel)
    best = BestCheckpoint(run.selection_metric)
    if checkpoints is not None:
        checkpoints.restore(run, best)
    regime = run_streaming if config.train.regime == "streaming" else run_multi_epoch
    valid, test, details = regime(run, best, on_evaluation, progress, checkpoints)
    dataset = run.dataset
    result = {
        "config": to_dict(config),
        "model_family": model_spec(config.model.name).family,
        "dataset": {
            **dataset.fingerprint,
            "num_users": dataset.num_users,
            "num_items": dataset.num_items,
            "num_interactions": dataset.num_interactions,
            "tasks": list(dataset.task_names),
        },
        "params": parameter_counts(run.model),
        "device": str(run.device),
        "workers": run.parallel.world_size if run.parallel is not None else 1,
        "precision": run.precision.name,
        "environment": {"torch": torch.__version__, "python": platform.python_version()},
        "steps": run.step,
        "flops": run.flops,
        "pf_days": pf_days(run.flops),
        "selection_metric": run.selection_metric,
        **details,
        "valid": valid,
        "test": test,
        "history": run.history,
        "timing": {
            "passes": run.passes,
            "train_wall_seconds": run.train_wall_seconds,
            "train_cpu_seconds": run.train_cpu_seconds,
            "wall_seconds_per_pass": run.train_wall_seconds / max(run.passes, 1),
            "cpu_seconds_per_pass": run.train_cpu_seconds / max(run.passes, 1),
        },
        # measured after training, so the peak's matmul never competes with the run it rates
        # run.flops counts the global batch, which every worker of a data-parallel trial trains a share of
        "mfu": utilisation(run.flops, run.train_wall_seconds, device_peak(run.device, run.precision.name),
                           devices=run.parallel.world_size if run.parallel is not None else 1),
        "training_sparsity": {**run.trained_lengths.sparsity(config.data.max_seq_len).as_dict(),
                              # supervised tokens SL kept (the rest were not trained on); NaN with SL off
                              "targets_trained_fraction": run.trained_targets.fraction_trained()},
        "wall_seconds": time.perf_counter() - run.started,
    }
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "result.json", result)
    return result
