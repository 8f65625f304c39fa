"""A sweep with ``tracking`` logs every trial to a local MLflow file store and to TensorBoard event files."""

from __future__ import annotations


import pandas as pd
import pytest
import yaml

from sweep_fixtures import tiny_trial_config

pytest.importorskip("ray")
pytest.importorskip("mlflow", reason="needs MLflow (pip install -e '.[tracking]')")

from scaling.cli import main  # noqa: E402
from scaling.sweep.tracking import ALLOW_FILE_STORE, file_store_allowed, flat_config  # noqa: E402


def test_flat_config_names_keys_as_the_cli_does():
    assert flat_config({"model": {"name": "hstu", "hstu": {"rab": "pos"}}, "seed": 1, "data": {"path": None}}) == {
        "model.name": "hstu", "model.hstu.rab": "pos", "seed": 1, "data.path": None}


def test_a_tracked_sweep_logs_config_metrics_flops_and_pf_days(cluster, tmp_path):
    import os

    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "tracked.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tracked",
        "config": tiny_trial_config(tmp_path),
        "tracking": {"mlflow": "local", "tensorboard": True},
    }))
    assert main(["sweep", str(sweep), "--storage", str(tmp_path)]) == 0
    assert ALLOW_FILE_STORE not in os.environ  # set only while the sweep ran
    table = pd.read_parquet(tmp_path / "tracked" / "results.parquet")
    trial_id = table["trial_id"].iloc[0]

    with file_store_allowed("file:"):
        client = MlflowClient(f"file://{tmp_path / 'tracked' / 'mlflow'}")
        experiment = client.get_experiment_by_name("tracked")
        [run] = client.search_runs([experiment.experiment_id])
        history = {key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
                   for key in ("valid/ndcg_at_10", "flops", "pf_days", "test/ndcg_at_10")}
    assert run.info.run_name == trial_id and run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "hstu" and run.data.params["train.epochs"] == "2"
    assert run.data.params["data.synthetic_dp.num_items"] == "100"
    assert run.data.tags["group"] == "main" and run.data.tags["model"] == "hstu" and run.data.tags["sweep"] == "tracked"
    assert history["valid/ndcg_at_10"] == pytest.approx(table["valid/ndcg@10"].tolist())  # every evaluation
    assert history["flops"][:2] == pytest.approx(table["flops"].tolist())  # then the final report's total
    assert history["pf_days"][:2] == pytest.approx(table["pf_days"].tolist())
    assert history["test/ndcg_at_10"] == pytest.approx([table["test/ndcg@10"].iloc[-1]])
    assert list((tmp_path / "tracked" / "tune").glob(f"*/{trial_id}/events.out.tfevents.*"))
