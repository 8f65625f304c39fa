"""A run restored from a checkpoint continues the very run that was saved (no Ray here).

The first run stops dead at an evaluation after its checkpoint, as a killed worker would; the
second, built from the same config, restores that checkpoint and finishes. Its history, test
metrics, steps and FLOPs must equal those of a run that was never interrupted: dropout, negatives,
data order, optimizer moments and the best-so-far state all come back.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import torch

from scaling import checkpoint as training_state
from scaling.config import load_run_config
from scaling.train import BestCheckpoint, Run, train

TINY = ["data.dataset=synthetic-dp", "data.synthetic_dp.num_items=150", "data.synthetic_dp.num_categories=8",
        "data.synthetic_dp.num_records=160", "data.synthetic_dp.record_length=20", "data.max_seq_len=16",
        "model.embedding_dim=16", "model.num_heads=2", "model.dropout=0.2", "train.batch_size=32",
        "train.num_negatives=16", "eval.batch_size=128"]
RANKING = ["data.dataset=synthetic-industrial", "data.task=ranking", "data.max_seq_len=32",
           "data.synthetic_industrial.num_users=80", "data.synthetic_industrial.num_items=120",
           "data.synthetic_industrial.num_categories=6", "data.synthetic_industrial.mean_events_per_user=30.0",
           "data.synthetic_industrial.max_events_per_user=60", "model.embedding_dim=16", "model.num_heads=2",
           "model.dropout=0.1", "train.regime=streaming", "train.epochs=1", "train.num_windows=7", "train.batch_size=16",
           "eval.progressive=true", "eval.batch_size=64"]
CASES = {
    "multi_epoch retrieval": [*TINY, "model.name=hstu", "train.epochs=5", "train.patience=0"],
    "streaming ranking, progressive": [*RANKING, "model.name=hstu"],
    "streaming DLRM impressions": [*RANKING, "model.name=dcnv2", "model.dropout=0.0"],
}


class Killed(Exception):
    """The worker died."""


class MemoryCheckpoints:
    """Saves every ``every`` evaluations into memory (through the real file format); can die at an evaluation."""

    def __init__(self, every: int, die_at: int | None = None, saved: bytes | None = None) -> None:
        self.every, self.die_at, self.saved = every, die_at, saved
        self.saved_at: int | None = None

    def restore(self, run: Run, best: BestCheckpoint) -> None:
        if self.saved is not None:
            training_state.restore(run, best, torch.load(io.BytesIO(self.saved), weights_only=False))

    def evaluated(self, run: Run, best: BestCheckpoint, final: bool) -> None:
        if len(run.history) == self.die_at:
            raise Killed
        if not final and len(run.history) % self.every == 0:
            buffer = io.BytesIO()
            torch.save(training_state.capture(run, best), buffer)
            self.saved, self.saved_at = buffer.getvalue(), len(run.history)


def without_timings(history: list[dict[str, Any]]) -> str:
    """The history as text (NaN equals NaN there), elapsed times left out."""
    return as_text([{key: value for key, value in entry.items() if key != "elapsed_seconds"} for entry in history])


def as_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_a_run_resumed_from_its_checkpoint_records_what_an_uninterrupted_run_does(overrides):
    config = load_run_config(None, overrides)
    uninterrupted = train(config, progress=False)
    evaluations = len(uninterrupted["history"])
    assert evaluations >= 4

    killed = MemoryCheckpoints(every=2, die_at=evaluations - 1)
    with pytest.raises(Killed):
        train(config, progress=False, checkpoints=killed)
    assert killed.saved_at == evaluations - 2 or killed.saved_at == evaluations - 3  # the last even one before

    seen: list[dict[str, Any]] = []
    resumed = train(config, progress=False, on_evaluation=seen.append,
                    checkpoints=MemoryCheckpoints(every=2, saved=killed.saved))
    assert [entry["step"] for entry in seen] == [e["step"] for e in uninterrupted["history"][killed.saved_at:]]
    assert without_timings(resumed["history"]) == without_timings(uninterrupted["history"])
    for key in ("test", "valid", "steps", "flops", "training_sparsity"):
        assert as_text(resumed[key]) == as_text(uninterrupted[key]), key
    assert resumed["timing"]["passes"] == uninterrupted["timing"]["passes"]


def test_a_checkpoint_of_another_format_is_refused():
    config = load_run_config(None, [*TINY, "model.name=hstu", "train.epochs=1"])
    from scaling.train import build_run

    run = build_run(config)
    best = BestCheckpoint(run.selection_metric)
    state = training_state.capture(run, best)
    with pytest.raises(ValueError, match="format"):
        training_state.restore(run, best, {**state, "format": training_state.FORMAT + 1})
