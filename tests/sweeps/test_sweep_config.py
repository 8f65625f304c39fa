"""Sweep configs: expansion into validated trials, and one-line errors naming file, axis and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.configtools import ConfigError
from scaling.cli import main
from scaling.sweep.expand import expand_sweep
from scaling.sweep.spec import load_sweep

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


def write_sweep(tmp_path: Path, body: dict, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "test", **body}, sort_keys=False))
    return path


def trials_of(path: Path, overrides: tuple[str, ...] = ()):
    return expand_sweep(load_sweep(path, overrides), path)


def one_line_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as error:
        trials_of(path, overrides)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_grid_zip_groups_and_seeds_multiply(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("train: {lr: 0.01, batch_size: 16}\nmodel: {dropout: 0.1}\n")
    path = write_sweep(tmp_path, {
        "base": "base.yaml",
        "config": {"train": {"batch_size": 32}},
        "grid": {"data.max_seq_len": [20, 40]},
        "groups": [
            {"name": "hstu", "config": {"model": {"name": "hstu"}},
             "zip": [{"model.num_layers": [1, 2, 4], "model.embedding_dim": [8, 16, 32]}]},
            {"name": "sasrec", "config": {"model": {"name": "sasrec"}}, "grid": {"train.num_negatives": [8, 16]}},
        ],
        "seeds": [1, 2],
        "budget": {"steps": 5, "flops": 1e9},
    })
    trials = trials_of(path)
    assert [t.group for t in trials].count("hstu") == 2 * 3 * 2
    assert [t.group for t in trials].count("sasrec") == 2 * 2 * 2
    first = trials[0]
    assert first.point == {"data.max_seq_len": 20, "model.num_layers": 1, "model.embedding_dim": 8}
    assert (first.config.model.name, first.config.seed, first.config.data.max_seq_len) == ("hstu", 1, 20)
    assert (first.config.train.lr, first.config.train.batch_size, first.config.model.dropout) == (0.01, 32, 0.1)
    assert (first.config.train.max_steps, first.config.train.max_flops) == (5, 1e9)
    assert [t.config.model.num_layers for t in trials[:6]] == [1, 1, 2, 2, 4, 4]  # seeds vary fastest
    assert trials[-1].point == {"data.max_seq_len": 40, "train.num_negatives": 16}


def test_a_list_of_flops_budgets_is_a_grid_axis_of_isoflop_profiles(tmp_path):
    path = write_sweep(tmp_path, {"budget": {"flops": [1e9, 3e9]},
                                  "zip": [{"model.num_layers": [1, 2], "model.embedding_dim": [8, 16]}]})
    trials = trials_of(path)
    assert [(t.point["train.max_flops"], t.config.model.num_layers) for t in trials] == [(1e9, 1), (1e9, 2), (3e9, 1), (3e9, 2)]
    assert [t.config.train.max_flops for t in trials] == [1e9, 1e9, 3e9, 3e9]


def test_the_isoflop_sweep_crosses_every_budget_with_every_shape():
    trials = trials_of(Path(__file__).resolve().parents[2] / "sweeps" / "isoflop.yaml")
    budgets = sorted({t.config.train.max_flops for t in trials})
    assert len(budgets) == 3 and len(trials) == 3 * 6
    shapes = {b: {(t.config.data.max_seq_len, t.config.model.num_layers) for t in trials if t.config.train.max_flops == b}
              for b in budgets}
    assert len({frozenset(s) for s in shapes.values()}) == 1


def test_trial_ids_follow_the_config_not_the_position(tmp_path):
    ids = [t.trial_id for t in trials_of(write_sweep(tmp_path, {"grid": {"model.num_layers": [1, 2, 3]}}))]
    assert len(set(ids)) == 3 and all(i.startswith("main-") for i in ids)
    reordered = [t.trial_id for t in trials_of(write_sweep(tmp_path, {"grid": {"model.num_layers": [3, 1]}}, "b.yaml"))]
    assert reordered == [ids[2], ids[0]]


@pytest.mark.parametrize("axis, value, expected", [
    ("model.num_layer", 2, "axis 'model.num_layer' value 2: config key 'model.num_layer': unknown key"),
    ("model.num_layers", "deep", "axis 'model.num_layers' value 'deep': config key 'model.num_layers': must be an integer"),
    ("model.name", "gpt", "axis 'model.name' value 'gpt': config key 'model.name': must be one of"),
    ("train.lr", -1.0, "axis 'train.lr' value -1.0: config key 'train.lr': must be > 0"),
    ("model.name", "dcnv2", "axis 'model.name' value 'dcnv2': config key 'model.name': model 'dcnv2' cannot be trained on "
                            "data.task 'retrieval'"),
    ("model.num_layers.depth", 2, "axis 'model.num_layers.depth' value 2: config key 'model.num_layers': must be an integer"),
])
def test_bad_axis_name_or_value_names_file_axis_and_value(tmp_path, axis, value, expected):
    path = write_sweep(tmp_path, {"grid": {axis: [value]}})
    assert expected in one_line_error(path)


def test_dry_run_refuses_stochastic_length_on_a_dlrm_group(tmp_path, capsys):
    """The check scaling train would make once a trial started is made for every trial before the first starts."""
    path = write_sweep(tmp_path, {
        "config": {"data": {"task": "ranking"}, "train": {"stochastic_length": {"alpha": 1.6}}},
        "groups": [{"name": "hstu", "config": {"model": {"name": "hstu"}}},
                   {"name": "dcnv2", "config": {"model": {"name": "dcnv2"}}, "grid": {"model.dlrm.hidden_dim": [32, 64]}}],
    })
    assert main(["sweep", str(path), "--dry-run", "--storage", str(tmp_path / "runs")]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {path}: group 'dcnv2': config (base, config and group config merged): config key "
        "'train.stochastic_length.alpha': model 'dcnv2' reads impressions, not token sequences, so Stochastic Length "
        "cannot apply; set it to null\n"
    )


def test_an_axis_the_group_model_does_not_read_is_refused(tmp_path):
    """A swept key the model ignores would draw a flat line that looks like saturation."""
    path = write_sweep(tmp_path, {"groups": [{"name": "hstu", "config": {"model": {"name": "hstu"}},
                                              "grid": {"model.dlrm.hidden_dim": [256, 512]}}]})
    assert ("group 'hstu': axis 'model.dlrm.hidden_dim' value 512: config key 'model.dlrm.hidden_dim': hstu does not read "
            "the model.dlrm section") in one_line_error(path)


def test_bad_combination_names_the_trial(tmp_path):
    path = write_sweep(tmp_path, {"grid": {"model.num_heads": [1, 3]}, "config": {"model": {"embedding_dim": 50}}})
    message = one_line_error(path)
    assert "trial model.num_heads=3" in message and "divisible by num_heads" in message


@pytest.mark.parametrize("body, expected", [
    ({"resources": {"gpu": -1}}, "config key 'resources.gpu': must be >= 0"),
    ({"resources": {"cpu": 0}}, "config key 'resources.cpu': must be > 0"),
    ({"resources": {"gpu": 1.5}}, "config key 'resources.gpu': must be a whole number"),
    ({"resources": {"tpu": 1}}, "config key 'resources.tpu': unknown key"),
    ({"resources": {"workers": 0}}, "config key 'resources.workers': must be >= 1"),
    ({"resources": {"workers": 2, "gpu": 0.5}}, "config key 'resources.gpu': must be 0 or 1 with workers > 1"),
    ({"grid": {"model.num_layers": []}}, "config key 'grid.model.num_layers': has no values"),
    ({"groups": [{"name": "g", "grid": {"model.num_layers": []}}]}, "config key 'groups[0].grid.model.num_layers': has no values"),
    ({"zip": [{"model.num_layers": [1, 2], "model.embedding_dim": [8]}]}, "must have the same length"),
    ({"zip": [{}]}, "config key 'zip[0]': is empty"),
    ({"grid": {"model.num_layers": [1]}, "zip": [{"model.num_layers": [2]}]}, "is already an axis"),
    ({"groups": [{"name": "a"}, {"name": "a"}]}, "group names must be unique"),
    ({"groups": [{"name": "a b"}]}, "config key 'groups[0].name': must be letters"),
    ({"seeds": []}, "config key 'seeds': is empty"),
    ({"max_concurrent_trials": -1}, "config key 'max_concurrent_trials': must be >= 0"),
    ({"grid": "model.num_layers"}, "config key 'grid': must be a mapping"),
    ({"budget": {"hours": 2}}, "config key 'budget.hours': unknown key"),
    ({"budget": {"flops": 0}}, "config key 'budget.flops': must be > 0"),
    ({"budget": {"flops": [1e9, -1.0]}}, "config key 'budget.flops': must be > 0"),
    ({"budget": {"flops": [1e9, 1e9]}}, "config key 'budget.flops': a list of budgets must be non-empty and without repeats"),
    ({"nam": "x"}, "config key 'nam': unknown key"),
])
def test_bad_sweep_sections_are_one_line_errors(tmp_path, body, expected):
    assert expected in one_line_error(write_sweep(tmp_path, body))


@pytest.mark.parametrize("body, expected", [
    ({"grid": {"train.max_steps": [1, 2]}, "budget": {"steps": 3}}, "axis 'train.max_steps' is also set by budget"),
    ({"grid": {"train.max_flops": [1e9]}, "budget": {"flops": [2e9, 4e9]}}, "axis 'train.max_flops' is also set by budget"),
    ({"grid": {"seed": [1, 2]}, "seeds": [3]}, "axis 'seed' conflicts with the seeds list"),
    ({"grid": {"model.num_layers": [1]}, "groups": [{"name": "g", "grid": {"model.num_layers": [2]}}]},
     "axis 'model.num_layers' is swept both"),
    ({"grid": {"model.num_layers": [2, 2]}}, "give the same run config"),
    ({"config": {"train": {"device": "cuda"}}}, "train.device is 'cuda' but resources.gpu is 0"),
    ({"resources": {"gpu": 1}, "config": {"train": {"device": "cpu"}}}, "the GPU would sit idle"),
    ({"config": {"train": {"lr": 0}}, "grid": {"model.num_layers": [1]}}, "config (base, config and group config merged)"),
])
def test_conflicting_sweep_settings_are_refused(tmp_path, body, expected):
    assert expected in one_line_error(write_sweep(tmp_path, body))


def test_missing_base_file_is_named(tmp_path):
    message = one_line_error(write_sweep(tmp_path, {"base": "nowhere.yaml"}))
    assert "nowhere.yaml: config file not found" in message


def test_overrides_apply_to_the_sweep(tmp_path):
    path = write_sweep(tmp_path, {"grid": {"model.num_layers": [1, 2]}})
    trials = trials_of(path, ("budget.epochs=2", "resources.cpu=2", "seeds=[7]"))
    assert [(t.config.train.epochs, t.resources.cpu, t.config.seed) for t in trials] == [(2, 2.0, 7)] * 2


@pytest.mark.parametrize("sweep", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_validate(sweep):
    trials = trials_of(sweep)
    assert trials and len({t.trial_id for t in trials}) == len(trials)
