"""Encoders build the batch's attention layout once per forward and hand it to every layer, and the CPU
backend gives the whole model the reference backend's outputs and parameter gradients."""

from __future__ import annotations

import pytest
import torch

import model.hstu
import model.softmax_attention
from jagged_inputs import sequences_of
from model.config import HSTUConfig, ModelConfig
from model.inputs import Vocabulary
from model.registry import build_model

# where each encoder's layers look attention_layout up (SASRec and Transformer++ share their attention)
ENCODER_MODULES = {"hstu": model.hstu, "sasrec": model.softmax_attention, "transformerpp": model.softmax_attention}


@pytest.mark.parametrize("name", ["hstu", "sasrec", "transformerpp"])
def test_the_layout_is_built_once_per_forward_for_all_layers(name: str, monkeypatch) -> None:
    module = ENCODER_MODULES[name]
    built, seen = [], []
    original = module.attention_layout

    def counting_layout(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(module, "attention_layout", counting_layout)
    torch.manual_seed(0)
    network = build_model(ModelConfig(name=name, num_layers=3, num_heads=2, embedding_dim=8, dropout=0.0),
                          "retrieval", Vocabulary(30, 16))
    for layer in network.backbone.encoder.layers:
        layer.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[2]))
    network(sequences_of([5, 9, 2]))
    assert len(built) == 1 and built[0] is not None
    assert len(seen) == 3 and all(layout is built[0] for layout in seen)


def model_outputs_and_gradients(name: str, backend: str, hstu: HSTUConfig | None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    config = ModelConfig(name=name, num_layers=2, num_heads=2, embedding_dim=16, dropout=0.0, attention_backend=backend,
                         **({"hstu": hstu} if hstu is not None else {}))
    network = build_model(config, "ranking", Vocabulary(30, 32, num_action_tokens=2, task_names=("click",)))
    sequences = sequences_of([20, 3, 31, 12], num_targets=[4, 0, 7, 1])
    out = network(sequences)
    out.pow(2).sum().backward()
    grads = {name: parameter.grad for name, parameter in network.named_parameters() if parameter.grad is not None}
    return {"out": out.detach(), **grads}


@pytest.mark.parametrize("name, hstu", [
    ("hstu", HSTUConfig()),
    ("hstu", HSTUConfig(rab="pos")),
    ("hstu", HSTUConfig(attention="softmax", time_bucket_fn="sqrt")),
    ("sasrec", None),
])
def test_cpu_backend_gives_the_reference_model_outputs_and_gradients(name: str, hstu: HSTUConfig | None) -> None:
    want = model_outputs_and_gradients(name, "reference", hstu)
    got = model_outputs_and_gradients(name, "cpu", hstu)
    assert set(got) == set(want)
    if name == "hstu":
        assert {"position_weights"} <= {key.split(".")[-1] for key in got}
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-6, msg=key)
