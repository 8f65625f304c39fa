"""The one training path: ``train(config) -> result``, used by ``scaling train`` and by sweep trials.

Steps: resolve the device and seeds, load and split the data, build the model, then loop
epochs of AdamW steps; validate every ``train.eval_every`` epochs, keep the best validation
checkpoint (by ``eval.selection_metric``), stop early after ``train.patience`` validations
without improvement, and report test metrics from the best checkpoint. Each validation is
passed to an optional callback (the sweep runner reports it to Ray Tune).
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from model.losses import sample_uniform_negatives, sampled_softmax_loss
from model.params import parameter_counts
from model.registry import build_model, model_family
from scaling.config import RunConfig
from scaling.configtools import to_dict
from scaling.data.batching import LeaveOneOutSplit, TrainingBatch
from scaling.errors import UserError
from scaling.evaluation import evaluate_retrieval
from scaling.flops import pf_days, training_step_flops, training_workload
from scaling.results import write_json_atomic

EvaluationCallback = Callable[[dict[str, Any]], None]


class RunFailed(UserError):
    """A run that could not finish; the message says why in one line."""


class TrainingDiverged(RunFailed):
    """The training loss became NaN or infinite."""


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("config key 'train.device': 'cuda' was requested but no CUDA device is available")
    return torch.device(requested)


@dataclass
class RunState:
    """What the loop carries between epochs."""

    step: int = 0
    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    best_valid: dict[str, float] = field(default_factory=dict)
    evaluations_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    flops: float = 0.0  # cumulative training FLOPs (scaling/flops.py)
    params: dict[str, int] = field(default_factory=dict)  # embedding / non_embedding / total


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: TrainingBatch,
    num_negatives: int,
    temperature: float,
    generator: torch.Generator,
) -> float:
    """One AdamW step of sampled-softmax next-item prediction; returns the loss."""
    model.train()
    queries = model(batch.sequences)  # [T, d]
    negative_ids = sample_uniform_negatives(
        batch.target_ids.numel(), num_negatives, model.num_items, generator, batch.target_ids.device
    )
    loss = sampled_softmax_loss(
        queries,
        model.item_vectors(batch.target_ids),
        model.item_vectors(negative_ids),
        batch.target_ids,
        negative_ids,
        temperature,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def budget_spent(state: RunState, config: RunConfig, started: float) -> bool:
    """True once a step, FLOPs or wall-time budget of ``train`` is used up (epochs are the loop's own bound)."""
    budget = config.train
    return (
        (budget.max_steps is not None and state.step >= budget.max_steps)
        or (budget.max_flops is not None and state.flops >= budget.max_flops)
        or (budget.max_wall_seconds is not None and time.perf_counter() - started >= budget.max_wall_seconds)
    )


def _selection_score(metrics: dict[str, float], metric: str) -> float:
    if metric not in metrics:
        raise UserError(f"config key 'eval.selection_metric': {metric!r} is not a metric; choose one of {', '.join(metrics)}")
    # Every retrieval metric is higher-is-better.
    return metrics[metric]


def _record_evaluation(state: RunState, model: nn.Module, valid: dict[str, float], loss: float, started: float, config: RunConfig) -> bool:
    """Append to the history, update the best checkpoint; True when training should stop early."""
    entry = {
        "epoch": state.epoch,
        "step": state.step,
        "train_loss": loss,
        "elapsed_seconds": time.perf_counter() - started,
        "flops": state.flops,
        "pf_days": pf_days(state.flops),
        "params": state.params,
        "valid": valid,
    }
    state.history.append(entry)
    score = _selection_score(valid, config.eval.selection_metric)
    if score > state.best_score:
        state.best_score, state.best_epoch, state.best_valid = score, state.epoch, valid
        state.best_state = copy.deepcopy(model.state_dict())
        state.evaluations_without_improvement = 0
        return False
    state.evaluations_without_improvement += 1
    return config.train.patience > 0 and state.evaluations_without_improvement >= config.train.patience


def train(
    config: RunConfig,
    out_dir: Path | None = None,
    on_evaluation: EvaluationCallback | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate ``config``; return (and write to ``out_dir/result.json``) the results record."""
    from scaling.data.loading import load_dataset

    started = time.perf_counter()
    device = resolve_device(config.train.device)
    torch.manual_seed(config.seed)
    dataset = load_dataset(config.data, config.seed)
    split = LeaveOneOutSplit(dataset, config.data.max_seq_len)
    model = build_model(config.model, dataset.num_items, config.data.max_seq_len).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay, betas=(0.9, 0.98)
    )
    negatives_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    shuffle_rng = np.random.default_rng(config.seed + 2)
    state = RunState(params=parameter_counts(model))

    epochs = tqdm(range(1, config.train.epochs + 1), desc=config.name, unit="epoch", disable=not progress)
    for state.epoch in epochs:
        losses = []
        for batch in split.training_batches(config.train.batch_size, shuffle_rng):
            workload = training_workload(batch, config.train.num_negatives)
            loss = train_step(model, optimizer, batch.to(device), config.train.num_negatives,
                              config.train.temperature, negatives_generator)
            state.step += 1
            state.flops += training_step_flops(model, workload)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"training diverged: loss became {loss} at step {state.step} (epoch {state.epoch})")
            losses.append(loss)
            if budget_spent(state, config, started):
                break
        out_of_budget = budget_spent(state, config, started)
        last_epoch = state.epoch == config.train.epochs or out_of_budget
        if state.epoch % config.train.eval_every and not last_epoch:
            continue
        valid = evaluate_retrieval(model, split, "valid", config.eval.batch_size, device, config.eval.exclude_history)
        mean_loss = float(np.mean(losses)) if losses else float("nan")
        stop = _record_evaluation(state, model, valid, mean_loss, started, config)
        epochs.set_postfix(loss=f"{mean_loss:.4f}", **{config.eval.selection_metric: f"{valid[config.eval.selection_metric]:.4f}"})
        if on_evaluation is not None:
            on_evaluation(state.history[-1])
        if stop or out_of_budget:
            break
    epochs.close()

    model.load_state_dict(state.best_state)
    test = evaluate_retrieval(model, split, "test", config.eval.batch_size, device, config.eval.exclude_history)
    result = {
        "config": to_dict(config),
        "model_family": model_family(config.model.name),
        "dataset": {
            **dataset.fingerprint,
            "num_users": dataset.num_users,
            "num_items": dataset.num_items,
            "num_interactions": dataset.num_interactions,
            "training_users": int(len(split.training_users)),
            "training_tokens_per_epoch": split.num_training_tokens(),
        },
        "params": state.params,
        "device": str(device),
        "environment": {"torch": torch.__version__, "python": platform.python_version()},
        "epochs_run": state.epoch,
        "steps": state.step,
        "flops": state.flops,
        "pf_days": pf_days(state.flops),
        "best_epoch": state.best_epoch,
        "valid": state.best_valid,
        "test": test,
        "history": state.history,
        "wall_seconds": time.perf_counter() - started,
    }
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "result.json", result)
    return result
