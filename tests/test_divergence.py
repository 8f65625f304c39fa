"""Divergence beyond NaN: absurd losses and validation NE end a run as "diverged", with the reason recorded."""

from __future__ import annotations

import math

import pytest

from core.results_schema import DIVERGED
from scaling.config import load_run_config
from scaling.divergence import NE_LIMIT, DivergenceWatch, TrainingDiverged
from scaling.sweep.reports import failure_report
from scaling.train import train

TINY_DLRM = [
    "model.name=dlrm", "model.dlrm.hidden_dim=16", "data.dataset=synthetic-industrial", "data.task=ranking",
    "data.synthetic_industrial.num_users=60", "data.synthetic_industrial.num_items=100",
    "data.synthetic_industrial.num_categories=5", "data.synthetic_industrial.mean_events_per_user=30.0",
    "data.synthetic_industrial.max_events_per_user=60", "train.epochs=2", "train.batch_size=32", "train.device=cpu",
    "train.patience=0",
]


def test_a_dlrm_at_lr_1e3_is_diverged_with_its_reason(tmp_path):
    """Before: test NE 6e18 recorded as completed. Now the first absurd step ends the run as diverged."""
    config = load_run_config(None, [*TINY_DLRM, "train.lr=1e3", f"data.cache_dir={tmp_path}"])
    with pytest.raises(TrainingDiverged) as diverged:
        train(config, progress=False)
    report = failure_report(diverged.value, 1.0)
    assert report["status"] == DIVERGED
    assert report["failure_reason"].startswith("training diverged: loss ") and "x its best" in report["failure_reason"]


def test_watch_tells_noise_from_divergence():
    watch = DivergenceWatch()
    for step, loss in enumerate([0.7, 0.4, 0.01, 2.0, 0.5], start=1):  # a bad batch is not divergence
        watch.check_step(loss, step)
    with pytest.raises(TrainingDiverged, match="loss 5e\\+04 at step 6 is over 1000 x its best"):
        watch.check_step(5e4, 6)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 7"):
        DivergenceWatch().check_step(math.nan, 7)
    watch = DivergenceWatch()
    watch.check_validation({"ne": 1.2, "ne/click": math.nan, "auc": 0.4, "hr@10": 0.0}, 10)  # NaN NE: no positives
    with pytest.raises(TrainingDiverged, match=f"validation ne/like 371 at step 20 is above {NE_LIMIT:g} x"):
        watch.check_validation({"ne": 1.0, "ne/like": 371.0}, 20)
