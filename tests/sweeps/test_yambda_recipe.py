"""The Yambda MLPerf-style recipe: its protocol as configured, and the GR-vs-DLRM sweep run end to end on a small file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scaling.cli import main
from scaling.commands.reproduce import SWEEPS_DIR
from scaling.sweep.expand import expand_sweep
from scaling.sweep.spec import load_sweep

RECIPES = ("yambda.yaml", "yambda_gr_vs_dlrm.yaml")


def write_small_yambda(path: Path, num_users: int = 40, events_per_user: int = 40, days: int = 12) -> Path:
    """A multi_event.parquet in Yambda's layout: listens with played ratios, and feedback events."""
    rng = np.random.default_rng(0)
    size = num_users * events_per_user
    kinds = rng.choice(["listen", "like", "dislike", "unlike", "undislike"], size=size, p=[0.8, 0.1, 0.05, 0.03, 0.02])
    listen = kinds == "listen"
    table = pa.table({
        "uid": pa.array(np.repeat(np.arange(num_users) * 10, events_per_user), pa.uint32()),
        "item_id": pa.array(rng.integers(1, 60, size), pa.uint32()),
        "timestamp": pa.array(np.sort(rng.integers(0, days * 86_400 // 5, size)) * 5, pa.uint32()),
        "is_organic": pa.array(rng.integers(0, 2, size), pa.uint8()),
        "played_ratio_pct": pa.array(np.where(listen, rng.integers(0, 120, size), 0), pa.uint16(), mask=~listen),
        "track_length_seconds": pa.array(rng.integers(60, 400, size), pa.uint32(), mask=~listen),
        "event_type": pa.array(kinds).dictionary_encode(),
    })
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_follows_the_streaming_protocol(recipe: str) -> None:
    sweep_file = SWEEPS_DIR / recipe
    trials = expand_sweep(load_sweep(sweep_file), sweep_file)
    for trial in trials:
        config = trial.config
        assert config.data.dataset == "yambda" and config.data.task == "ranking"
        assert config.train.regime == "streaming"  # time-ordered windows, one held-out window for every evaluation
        training_windows = config.train.num_windows - 2
        assert training_windows % config.train.eval_every == 0  # evaluations at fixed fractions of training
        assert training_windows // config.train.eval_every == 10
        assert config.eval.selection_metric == "auc/listen_plus"
    families = {trial.family for trial in trials}
    assert families == ({"GR", "DLRM"} if "dlrm" in recipe else {"GR"})


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    import ray

    from scaling.sweep.runner import connect_ray

    started = connect_ray()
    yield
    if started:
        ray.shutdown()


def test_gr_vs_dlrm_recipe_runs_end_to_end_on_a_small_yambda_file(cluster, tmp_path: Path) -> None:
    data = write_small_yambda(tmp_path / "multi_event.parquet")
    small = ["config.data.path=" + str(data), f"config.data.cache_dir={tmp_path / 'cache'}",
             "config.data.max_seq_len=32", "config.train.num_windows=6", "config.train.eval_every=1",
             "config.train.batch_size=16", "config.train.device=cpu", "config.eval.max_users=null",
             "resources.cpu=1", "resources.gpu=0", "max_concurrent_trials=2"]
    arguments = ["sweep", str(SWEEPS_DIR / "yambda_gr_vs_dlrm.yaml"), "--storage", str(tmp_path / "runs")]
    assert main([*arguments, *(part for key in small for part in ("--set", key))]) == 0
    table = pd.read_parquet(tmp_path / "runs" / "yambda_gr_vs_dlrm" / "results.parquet")
    assert set(table["status"]) == {"completed"} and table["trial_id"].nunique() == 4
    assert set(table["family"]) == {"GR", "DLRM"}
    for column in ("valid/auc/listen_plus", "valid/ne/listen_plus", "valid/auc/like", "test/auc/listen_plus"):
        assert column in table.columns
    assert table["valid/auc/listen_plus"].between(0, 1).all()
    assert table["eval_set"].nunique() == 1  # every evaluation of every trial scored the same held-out window
    for _, rows in table.groupby("trial_id"):
        assert rows["epoch"].round(6).tolist() == [0.25, 0.5, 0.75, 1.0]  # each quarter of the 4 training windows
