"""``scaling reproduce``: shipped sweeps run on the sweep engine, then their view; every shipped sweep dry-runs."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pandas as pd
import pytest

from analysis.views import VIEWS
from scaling.cli import main
from scaling.commands.reproduce import REPRODUCTIONS, SWEEPS_DIR
from scaling.config import load_run_config
from scaling.sweep.expand import expand_sweep
from scaling.sweep.spec import load_sweep

SHIPPED = sorted(SWEEPS_DIR.glob("*.yaml"))


def test_help_lists_every_reproduction_with_a_description(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    printed = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for name, reproduction in REPRODUCTIONS.items():
        assert name + "".join(reproduction.help.split()) in printed


@pytest.mark.parametrize("name", list(REPRODUCTIONS))
def test_every_reproduction_is_a_shipped_sweep_and_a_view_and_dry_runs(name, tmp_path, capsys):
    reproduction = REPRODUCTIONS[name]
    assert (SWEEPS_DIR / reproduction.sweep).is_file() and reproduction.view in VIEWS
    assert main(["reproduce", name, "--dry-run", "--storage", str(tmp_path)]) == 0
    assert f"then the '{reproduction.view}' view" in capsys.readouterr().out


@pytest.mark.parametrize("sweep", SHIPPED, ids=lambda path: path.name)
def test_every_shipped_sweep_dry_runs_on_the_command_line(sweep, tmp_path, capsys):
    assert main(["sweep", str(sweep), "--dry-run", "--storage", str(tmp_path)]) == 0
    assert "to run; results would go to" in capsys.readouterr().out


def test_table4_sweep_trains_exactly_the_table4_run_configs():
    sweep_file = SWEEPS_DIR / "table4_ml100k_beauty.yaml"
    trials = expand_sweep(load_sweep(sweep_file), sweep_file)
    assert len(trials) == 4
    for trial in trials:
        config = trial.config
        run_file = SWEEPS_DIR / "runs" / f"table4-{config.data.dataset}-{config.model.name}.yaml"
        assert replace(config, name="run") == replace(load_run_config(run_file, []), name="run"), run_file


def test_table5_sweep_has_every_row_of_the_paper_on_both_tasks():
    sweep_file = SWEEPS_DIR / "table5.yaml"
    trials = expand_sweep(load_sweep(sweep_file), sweep_file)
    rows = {(t.group, t.config.data.task): t.config.model for t in trials}
    assert len(rows) == 12 and {task for _, task in rows} == {"gr_retrieval", "ranking"}
    variants = {group: (model.name, model.hstu.attention, model.hstu.rab) for (group, _), model in rows.items()}
    assert variants["hstu_softmax_no_rab"] == ("hstu", "softmax", "none")
    assert variants["hstu_no_rab"] == ("hstu", "pointwise", "none")
    assert variants["hstu_rab_pos"] == ("hstu", "pointwise", "pos")
    assert variants["hstu"] == ("hstu", "pointwise", "pos_time")
    assert variants["transformer"][0] == "sasrec" and variants["transformerpp"][0] == "transformerpp"
    assert {t.resources.cpu for t in trials} == {1.0} and {t.config.data.dataset for t in trials} == {
        "synthetic-industrial"}


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")
def test_reproduce_table2_shrunk_runs_the_sweep_writes_the_view_and_resumes(tmp_path, capsys):
    shrink = ["config.data.synthetic_dp.num_records=200", "config.data.synthetic_dp.num_items=300",
              "config.data.synthetic_dp.record_length=16", "config.data.max_seq_len=16",
              "config.model.embedding_dim=16", "config.train.num_negatives=16",
              f"config.data.cache_dir={tmp_path / 'cache'}"]
    command = ["reproduce", "table2", *(word for o in shrink for word in ("--set", o)), "--storage", str(tmp_path)]
    assert main(command) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "table2"
    table = pd.read_csv(folder / "table2.csv")
    assert table["variant"].tolist() == ["transformer", "hstu_softmax_no_rab", "hstu_no_rab"]
    assert table[["hr@10", "hr@50", "ndcg@10", "log_pplx"]].notna().all().all()
    assert (table["hr@50"] >= table["hr@10"]).all() and table["paper_hr@10"].tolist() == [0.0442, 0.0617, 0.0893]
    assert (folder / "table2.md").read_text() in printed
    results = pd.read_parquet(folder / "results.parquet")
    assert set(results["status"]) == {"completed"} and results["train_wall_seconds"].notna().sum() == 3

    assert main(command) == 2  # a second fresh run refuses to mix with the records there
    assert "pass --resume" in capsys.readouterr().err
    assert main([*command, "--resume"]) == 0  # nothing left to train: the same table from the same records
    assert "nothing to run" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(folder / "table2.csv"), table)
