"""Config validation: unknown keys and bad values are one-line errors naming the key."""

from __future__ import annotations

import pytest

from scaling.config import load_run_config
from core.configtools import ConfigError


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lr=abc", "config key 'train.lr': must be a number; got 'abc'"),
        ("train.lr=-1", "config key 'train.lr': must be > 0"),
        ("model.nam=x", "config key 'model.nam': unknown key; allowed keys here:"),
        ("model.name=gpt", "config key 'model.name': must be one of"),
        ("data.synthetic_dp.num_items=0", "config key 'data.synthetic_dp.num_items': must be >= 1"),
        ("train.epochs=1.5", "config key 'train.epochs': must be an integer"),
        ("eval.exclude_history=maybe", "config key 'eval.exclude_history': must be true or false"),
        ("train=3", "config key 'train': must be a section"),
        ("data.min_user_interactions=2", "config key 'data.min_user_interactions': must be >= 3"),
        # accepted before although they cannot work
        ("train.lr=.inf", "config key 'train.lr': must be > 0 and finite; got inf"),
        ("seed=-1", "config key 'seed': must be an integer in [0, 2^62]; got -1"),
        (f"seed={2**64}", "config key 'seed': must be an integer in [0, 2^62]"),
        ("data.seed=-5", "config key 'data.seed': must be an integer in [0, 2^62]"),
        ("eval.selection_metric=ndcg@7", "config key 'eval.selection_metric': retrieval reports hr@1, "),
        ("eval.selection_metric=ne", "config key 'eval.selection_metric': retrieval reports"),
        ("name=../../x", "config key 'name': must be letters, digits, '.', '_' or '-'"),
        ("name=/tmp/x", "config key 'name': must be letters, digits"),
        ("data.duplicate_events=keep", "config key 'data.duplicate_events': must be one of"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(None, [override])
    text = str(error.value)
    assert text.startswith(message) and "\n" not in text


def test_cross_field_check_says_how_to_fix():
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        load_run_config(None, ["model.embedding_dim=50", "model.num_heads=3"])


def test_yaml_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  name: hstu\n  num_layers: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_run_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_run_config(tmp_path / "missing.yaml")


def test_overrides_apply_in_order_and_exponent_floats_parse(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 1e-3\nmodel:\n  num_layers: 4\n")
    config = load_run_config(path, ["model.num_layers=8", "train.weight_decay=1e-2"])
    assert config.train.lr == pytest.approx(1e-3)
    assert config.model.num_layers == 8
    assert config.train.weight_decay == pytest.approx(1e-2)


def test_relative_data_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_run_config(None, ["data.path=some/dir"])
    assert config.data.path == str(tmp_path / "some" / "dir")


def test_every_key_is_typed_and_documented():
    """A field added to any config dataclass is a key (and so a sweep axis) only with a type and a one-line help."""
    from core.configtools import describe
    from scaling.config import RunConfig

    rows = describe(RunConfig)
    keys = [key for key, *_ in rows]
    assert len(keys) == len(set(keys)) and {"model.num_layers", "model.dlrm.hidden_dim", "data.max_seq_len"} <= set(keys)
    undocumented = [key for key, kind, _, help_text in rows if not kind or not help_text.strip() or "\n" in help_text]
    assert undocumented == []


def test_selection_metrics_follow_the_task():
    ranking = ["data.task=ranking", "data.dataset=synthetic-industrial"]
    for metric in ("ne", "auc", "ne/click", "auc/like"):
        assert load_run_config(None, [*ranking, f"eval.selection_metric={metric}"]).eval.selection_metric == metric
    with pytest.raises(ConfigError, match="ranking reports ne, auc and their per-task"):
        load_run_config(None, [*ranking, "eval.selection_metric=ndcg@10"])
    for metric in ("hr@500", "ndcg@200", "mrr", "log_pplx"):
        assert load_run_config(None, [f"eval.selection_metric={metric}"]).eval.selection_metric == metric


def test_duplicate_yaml_keys_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 0.001\n  epochs: 3\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_run_config(path)
    assert str(error.value) == f"{path}:4: invalid YAML (key 'lr' appears twice in one mapping; keep one)"


def test_scaling_config_applies_the_model_and_task_checks(capsys):
    from scaling.cli import main

    assert main(["config", "--set", "model.name=dlrm", "--set", "data.task=retrieval"]) == 2
    assert "model 'dlrm' cannot be trained on data.task 'retrieval'" in capsys.readouterr().err
