"""The model catalogue: one torch-free source of what each model is, which every caller asks.

The last test adds a model family the way a contributor would (a catalogue entry, a builder and
the network), on copies of the catalogue and the registry, and checks that the run config, the
sweep's dry run, the CLI and the training path all take it without another edit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from torch import Tensor, nn

from core.configtools import ConfigError, require, to_dict
from model import catalogue, registry
from model.catalogue import SECTIONS, ModelSpec
from model.config import ModelConfig
from model.flops import ImpressionWorkload, matmul_flops
from model.inputs import FeatureSpec, ImpressionFeatures
from scaling.cli import main
from scaling.config import load_run_config, run_config_from_dict
from scaling.data.actions import with_rating_actions
from scaling.data.sequences import SequenceDataset
from scaling.sweep.expand import expand_sweep
from scaling.sweep.spec import load_sweep
from scaling.train import build_run, evaluate, train_pass

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_builds_exactly_the_catalogue_models():
    assert list(registry.BUILDERS) == list(catalogue.MODELS)


def test_catalogue_sections_are_the_model_config_sections():
    hints = typing.get_type_hints(ModelConfig)
    nested = [f.name for f in dataclasses.fields(ModelConfig) if dataclasses.is_dataclass(hints[f.name])]
    assert tuple(nested) == SECTIONS
    for spec in catalogue.MODELS.values():
        assert spec.sections <= set(SECTIONS) and spec.tasks


def test_catalogue_config_and_sweep_expansion_import_no_torch():
    """A dry run, `scaling config` and the catalogue answer without loading torch (seconds saved per call)."""
    code = ("import sys; import model.catalogue, model.config, scaling.config, scaling.sweep.expand; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("overrides, message", [
    (["model.dlrm.hidden_dim=512"],
     "config key 'model.dlrm.hidden_dim': hstu does not read the model.dlrm section; remove it or choose a model "
     "that reads it (two_tower, dlrm, dcnv2, dhen, mmoe, din)"),
    (["model.name=sasrec", "model.hstu.rab=none"],
     "config key 'model.hstu.rab': sasrec does not read the model.hstu section; remove it or choose a model that reads "
     "it (hstu)"),
    (["model.name=dcnv2", "data.task=ranking", "model.transformer.ffn_dim=64"],
     "config key 'model.transformer.ffn_dim': dcnv2 does not read the model.transformer section"),
    (["model.name=hstu", "model.dlrm.dhen_modules=[dot]"], "config key 'model.dlrm.dhen_modules': hstu does not read"),
])
def test_a_key_of_a_section_the_model_does_not_read_is_refused(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(None, overrides)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_section_at_its_defaults_may_be_written_out_for_any_model():
    """Only a value that would be ignored is an error: a resolved config (every default spelled out) loads back."""
    model = {"name": "dcnv2", "hstu": {"rab": "pos_time"}, "transformer": {"ffn_dim": None}, "dlrm": {"low_rank": 8}}
    config = run_config_from_dict({"model": model, "data": {"task": "ranking"}})
    assert config.model.dlrm.low_rank == 8
    assert run_config_from_dict(to_dict(config)) == config


@pytest.mark.parametrize("overrides, message", [
    (["model.name=dlrm"], "config key 'model.name': model 'dlrm' cannot be trained on data.task 'retrieval'; it supports ranking"),
    (["model.name=two_tower", "data.task=ranking"], "config key 'model.name': model 'two_tower' cannot be trained on data.task 'ranking'"),
    (["model.name=din", "data.task=ranking", "train.stochastic_length.alpha=1.6"],
     "config key 'train.stochastic_length.alpha': model 'din' reads impressions, not token sequences, so Stochastic "
     "Length cannot apply; set it to null"),
])
def test_model_and_run_cross_checks_refuse_the_run_config(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(None, overrides)
    assert str(error.value).startswith(message)


def test_stochastic_length_on_a_sequence_model_is_fine():
    for name, task in (("hstu", "ranking"), ("two_tower", "retrieval")):
        config = load_run_config(None, [f"model.name={name}", f"data.task={task}", "train.stochastic_length.alpha=1.6"])
        assert config.train.stochastic_length.alpha == 1.6


def test_scaling_config_models_lists_the_catalogue(capsys):
    assert main(["config", "--models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(catalogue.MODELS)
    assert "impressions" in lines[1 + list(catalogue.MODELS).index("dcnv2")]


# --- adding a model family ---------------------------------------------------------------------


class ToyRanker(nn.Module):
    """A DLRM-style baseline in a dozen lines: an MLP from the dense features to the task logits."""

    def __init__(self, features: FeatureSpec, hidden_dim: int) -> None:
        super().__init__()
        self.dims = (features.num_dense, hidden_dim, features.num_tasks)
        self.mlp = nn.Sequential(nn.Linear(features.num_dense, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, features.num_tasks))

    def forward(self, features: ImpressionFeatures) -> Tensor:
        return self.mlp(features.dense)  # [N, num_tasks]

    def forward_flops(self, workload: ImpressionWorkload) -> float:
        dense, hidden, tasks = self.dims
        return matmul_flops(workload.num_impressions, dense, hidden) + matmul_flops(workload.num_impressions, hidden, tasks)


def narrow_hidden_layer(config: ModelConfig) -> None:
    """The toy's own cross-field check (a model-specific rule, the kind a catalogue entry carries)."""
    require(config.dlrm.hidden_dim <= 4 * config.embedding_dim, "dlrm.hidden_dim",
            f"must be <= 4 x model.embedding_dim for toy; got {config.dlrm.hidden_dim}")


TOY = ModelSpec("DLRM", "impressions", frozenset({"ranking"}), frozenset({"dlrm"}), "toy: an MLP over the dense features",
                (narrow_hidden_layer,))


@pytest.fixture
def toy_model(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``toy`` as a contributor would: one catalogue entry and one builder (on copies of both)."""
    monkeypatch.setattr(catalogue, "MODELS", {**catalogue.MODELS, "toy": TOY})
    build = registry.impression_model(lambda config, features: ToyRanker(features, config.dlrm.hidden_dim))
    monkeypatch.setattr(registry, "BUILDERS", {**registry.BUILDERS, "toy": build})
    return "toy"


def rated_dataset(num_users: int = 40, num_items: int = 30, seed: int = 0) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 12, size=num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, num_items + 1, size=int(offsets[-1]))
    stamps = np.concatenate([np.sort(rng.integers(0, 10**6, size=n)) for n in lengths])
    ratings = rng.integers(1, 6, size=int(offsets[-1])).astype(np.float32)
    return with_rating_actions(SequenceDataset(items, stamps, offsets, num_items=num_items, ratings=ratings))


def test_a_new_model_family_needs_only_its_catalogue_entry_and_builder(toy_model, tmp_path, capsys):
    # Validation: the run config takes it, with every catalogue rule applied to it.
    config = load_run_config(None, ["model.name=toy", "data.task=ranking", "model.embedding_dim=8",
                                    "model.dlrm.hidden_dim=16", "train.device=cpu", "train.max_steps=2"])
    assert config.model.name == "toy"
    for overrides, message in [
        (["data.task=retrieval"], "model 'toy' cannot be trained on data.task 'retrieval'; it supports ranking"),
        (["model.hstu.attention=softmax"], "config key 'model.hstu.attention': toy does not read the model.hstu section"),
        (["train.stochastic_length.alpha=1.5"], "model 'toy' reads impressions"),
        (["model.dlrm.hidden_dim=64"], "config key 'model.dlrm.hidden_dim': must be <= 4 x model.embedding_dim for toy"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_run_config(None, ["model.name=toy", "data.task=ranking", "model.embedding_dim=8", "model.dlrm.hidden_dim=16",
                                   *overrides])

    # Dry-run-style checks: a sweep group of it expands, with its family; the CLI lists and dry-runs it.
    sweep = tmp_path / "toy.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "toy", "config": {"data": {"task": "ranking"}, "model": {"embedding_dim": 8}},
        "groups": [{"name": "toy", "config": {"model": {"name": "toy"}}, "grid": {"model.dlrm.hidden_dim": [8, 16]}},
                   {"name": "hstu", "config": {"model": {"name": "hstu"}}}],
    }))
    trials = expand_sweep(load_sweep(sweep), sweep)
    assert [(t.model, t.family) for t in trials] == [("toy", "DLRM"), ("toy", "DLRM"), ("hstu", "GR")]
    assert main(["sweep", str(sweep), "--dry-run", "--storage", str(tmp_path / "runs")]) == 0
    capsys.readouterr()
    assert main(["config", "--models"]) == 0
    assert any(line.startswith("toy ") for line in capsys.readouterr().out.splitlines())

    # Building and training: the one training path builds its input, model, objective and FLOPs.
    run = build_run(config, rated_dataset())
    assert isinstance(run.model, ToyRanker)
    train_events = run.split.train
    loss = train_pass(run, run.batcher.chunks(train_events), "shuffle", None)
    assert run.step == 2 and np.isfinite(loss) and run.flops > 0
    assert set(evaluate(run, run.batcher.chunks(run.split.valid))) >= {"ne", "auc"}
