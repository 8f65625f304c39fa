"""A run's resumable state: what a checkpoint holds, written to and read back from one file.

A checkpoint is taken right after an evaluation (the end of a training pass), so the data
position is the number of passes done; with it go the model and optimizer states, every random
stream a run draws from (torch's global stream for dropout, the negatives' generator, the data
order's numpy generator), the step and FLOPs counters, the length tallies, the timings, the
evaluation history and the best-so-far checkpoint. Restoring all of it into a freshly built run
continues the very run that was saved: the rows it records afterwards are those an uninterrupted
run records (``tests/sweeps/test_checkpoints.py`` kills a trial's worker to check it).

:class:`Checkpoints` is how ``scaling.train.train`` meets a checkpoint store (Ray Tune's, in a
sweep): it offers each evaluation, and restores the last saved state before training starts.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from scaling.train import BestCheckpoint, Run

STATE_FILE = "training_state.pt"
FORMAT = 1  # bumped when the saved fields change; a checkpoint of another format is refused


class Checkpoints(Protocol):
    """Where ``train()`` saves and finds its state (``scaling.sweep.trainable`` implements it on Ray Tune)."""

    def restore(self, run: Run, best: BestCheckpoint) -> None:
        """Put the last saved state, if any, into the freshly built ``run`` and ``best``."""

    def evaluated(self, run: Run, best: BestCheckpoint, final: bool) -> None:
        """An evaluation was recorded (``run.history[-1]``); ``final``: training stops after it."""


def capture(run: Run, best: BestCheckpoint) -> dict[str, Any]:
    """Everything needed to continue ``run`` after its latest evaluation, as plain tensors and objects."""
    return {
        "format": FORMAT,
        "passes": run.passes,  # the data position: training passes (epochs or windows) completed
        "step": run.step,
        "flops": run.flops,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None,
            "negatives": run.negatives_generator.get_state(),
            "shuffle": copy.deepcopy(run.shuffle_rng.bit_generator.state),
        },
        "history": copy.deepcopy(run.history),
        "tallies": copy.deepcopy({"trained_lengths": run.trained_lengths, "lengths_since_record": run.lengths_since_record,
                                  "trained_targets": run.trained_targets}),
        "timing": {"elapsed": time.perf_counter() - run.started, "train_wall_seconds": run.train_wall_seconds,
                   "train_cpu_seconds": run.train_cpu_seconds},
        "best": {"score": best.score, "state": best.state, "valid": best.valid, "where": best.where, "stale": best.stale},
    }


def restore(run: Run, best: BestCheckpoint, state: dict[str, Any]) -> None:
    """Put a :func:`capture`d state into a run freshly built from the same config."""
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {state.get('format')} is not {FORMAT}; rerun the trial from the start")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.passes, run.step, run.flops = state["passes"], state["step"], state["flops"]
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None:
        torch.cuda.set_rng_state_all(rng["cuda"])
    run.negatives_generator.set_state(rng["negatives"])
    run.shuffle_rng.bit_generator.state = rng["shuffle"]
    run.history = state["history"]
    for name, tally in state["tallies"].items():
        setattr(run, name, tally)
    timing = state["timing"]
    run.started = time.perf_counter() - timing["elapsed"]  # wall-time budgets and elapsed times run on
    run.train_wall_seconds, run.train_cpu_seconds = timing["train_wall_seconds"], timing["train_cpu_seconds"]
    saved = state["best"]
    best.score, best.state, best.valid, best.where, best.stale = (
        saved["score"], saved["state"], saved["valid"], saved["where"], saved["stale"])


def save(folder: Path, run: Run, best: BestCheckpoint) -> Path:
    """Write the state of ``run`` to ``folder/training_state.pt``; returns the file."""
    path = Path(folder) / STATE_FILE
    torch.save(capture(run, best), path)
    return path


def load(folder: Path) -> dict[str, Any]:
    """The state saved in ``folder`` (written by :func:`save`: pickled objects as well as tensors).

    On the CPU: random-generator states must be CPU tensors, and loading a state dict copies
    each tensor to where the model's own lives.
    """
    return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
