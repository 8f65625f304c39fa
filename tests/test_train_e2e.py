"""End to end: a tiny HSTU learns, runs are reproducible, and the CLI keeps its contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from run_fixtures import TINY_RUN
from scaling.cli import main
from scaling.config import load_run_config
from scaling.metrics import random_ranker_expectation
from scaling.train import train



def test_tiny_hstu_learns_far_above_a_random_ranker():
    config = load_run_config(None, [*TINY_RUN, "train.epochs=6", "train.patience=0"])
    result = train(config, progress=False)
    random = random_ranker_expectation(200 - 24)  # items compete unless in the user's history
    assert result["test"]["hr@10"] > 4 * random["hr@10"]
    assert result["test"]["ndcg@10"] > 4 * random["ndcg@10"]
    losses = [entry["train_loss"] for entry in result["history"]]
    assert losses[-1] < losses[0]


def test_same_config_twice_gives_identical_metrics_and_another_seed_does_not():
    config = load_run_config(None, [*TINY_RUN, "train.epochs=2"])
    first = train(config, progress=False)
    second = train(config, progress=False)
    assert first["test"] == second["test"] and first["valid"] == second["valid"]
    assert [e["train_loss"] for e in first["history"]] == [e["train_loss"] for e in second["history"]]
    other_seed = train(load_run_config(None, [*TINY_RUN, "train.epochs=2", "seed=7"]), progress=False)
    assert other_seed["test"] != first["test"]


def test_cli_train_writes_the_contracted_result(tmp_path, capsys):
    out = tmp_path / "run"
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text("name: tiny\nmodel:\n  name: sasrec\n")
    code = main(["train", str(config_path), *[f"--set={o}" for o in TINY_RUN], "--set", "train.epochs=1", "--out", str(out), "--quiet"])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    for split in ("valid", "test"):
        assert {"hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "hr@1", "hr@500", "ndcg@200"} <= set(result[split])
    assert set(result["params"]) >= {"embedding", "non_embedding"}
    assert result["params"]["embedding"] > 0 and result["params"]["non_embedding"] > 0
    assert len(result["history"]) == 1 and result["wall_seconds"] > 0
    assert result["config"]["model"]["name"] == "sasrec"
    assert "wrote" in capsys.readouterr().out


def test_failed_run_exits_nonzero_with_one_line_reason(tmp_path):
    command = [sys.executable, "-m", "scaling.cli", "train", str(tmp_path / "missing.yaml")]
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode != 0
    assert finished.stderr.strip().count("\n") == 0 and "config file not found" in finished.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: fast\n")
    finished = subprocess.run([*command[:-1], str(bad)], capture_output=True, text=True)
    assert finished.returncode != 0 and finished.stderr.strip() == "error: config key 'train.lr': must be a number; got 'fast'"


STREAM = [
    "data.dataset=synthetic-industrial",
    "data.task=ranking",
    "data.synthetic_industrial.num_users=200",
    "data.synthetic_industrial.num_items=150",
    "data.synthetic_industrial.num_categories=8",
    "data.synthetic_industrial.mean_events_per_user=30",
    "data.max_seq_len=32",
    "model.embedding_dim=16",
    "model.dropout=0.0",
    "train.regime=streaming",
    "train.epochs=1",
    "train.num_windows=5",
    "train.batch_size=32",
]


def test_streaming_scores_every_evaluation_on_one_held_out_window(tmp_path):
    cache = f"data.cache_dir={tmp_path}"
    config = load_run_config(None, [*STREAM, cache, "eval.progressive=true"])
    result = train(config, progress=False)
    history = result["history"]
    assert [entry["epoch"] for entry in history] == pytest.approx([1 / 3, 2 / 3, 1.0])  # after windows 1, 2, 3
    assert {entry["eval_set"] for entry in history} == {result["eval_set"]}
    assert result["eval_set"].startswith("holdout-window-4-of-5:")
    # progressive validation scores the next, not yet trained window: on other data, so kept apart
    assert [("progressive" in entry) for entry in history] == [True, True, False]
    # the data's true probabilities on the very same events: a floor below every evaluation
    oracle = history[0]["oracle"]["ne"]
    assert all(entry["oracle"]["ne"] == oracle < entry["valid"]["ne"] for entry in history)
    # test metrics come from the checkpoint that was best on the held-out window
    best = min(history, key=lambda entry: entry["valid"]["ne"])
    assert result["valid"] == best["valid"] and result["best_window"] == best["window"]

    other_seed = train(load_run_config(None, [*STREAM, cache, "seed=7"]), progress=False)
    assert other_seed["eval_set"] == result["eval_set"]  # the trial seed changes the model, not the data
    assert other_seed["valid"] != result["valid"]
    other_data = train(load_run_config(None, [*STREAM, cache, "data.seed=7"]), progress=False)
    assert other_data["eval_set"] != result["eval_set"]


def test_streaming_validates_every_k_windows_and_always_after_the_last(tmp_path):
    cache = f"data.cache_dir={tmp_path}"
    windows = [entry["window"] for entry in
               train(load_run_config(None, [*STREAM, cache, "train.num_windows=7", "train.eval_every=2"]), progress=False)["history"]]
    assert windows == [1, 3, 4]  # after windows 2 and 4 of 5, and after the last one
    stopped = train(load_run_config(None, [*STREAM, cache, "train.num_windows=7", "train.eval_every=3", "train.max_steps=1"]),
                    progress=False)
    assert [entry["window"] for entry in stopped["history"]] == [0]  # the budget ran out: validated where it stopped


def test_multi_epoch_validates_every_k_epochs_and_after_the_last(tmp_path):
    config = load_run_config(None, [*TINY_RUN, "train.epochs=5", "train.eval_every=2", "train.patience=0"])
    assert [entry["epoch"] for entry in train(config, progress=False)["history"]] == [2, 4, 5]


def test_validation_on_a_user_sample_is_the_same_for_every_trial_and_named_apart(tmp_path):
    cache = f"data.cache_dir={tmp_path}"
    whole = train(load_run_config(None, [*STREAM, cache]), progress=False)
    sampled = train(load_run_config(None, [*STREAM, cache, "eval.max_users=30"]), progress=False)
    other_seed = train(load_run_config(None, [*STREAM, cache, "eval.max_users=30", "seed=7"]), progress=False)
    assert sampled["eval_set"].startswith("holdout-window-4-of-5-30-users:")
    assert sampled["eval_set"] == other_seed["eval_set"] != whole["eval_set"]  # fixed by the data, not the seed
    assert {entry["eval_set"] for entry in sampled["history"]} == {sampled["eval_set"]}
    # the oracle scores the same sample; the test window is always scored whole (here both runs pick the
    # same best window, so they test the same checkpoint on the same events)
    assert sampled["history"][0]["oracle"] != whole["history"][0]["oracle"]
    assert sampled["best_window"] == whole["best_window"] and sampled["test"] == whole["test"]
