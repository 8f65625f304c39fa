"""Model registry: ``model.name`` -> a constructed network, its family (GR or DLRM) and its tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from model.config import ModelConfig
from model.hstu import HSTUEncoder, HSTULayer
from model.inputs import Vocabulary
from model.recommender import SequenceBackbone, SequentialRankingModel, SequentialRetrievalModel
from model.sasrec import SASRecEncoder, SASRecLayer

Family = Literal["GR", "DLRM"]
SEQUENCE_TASKS = frozenset({"retrieval", "gr_retrieval", "ranking"})


@dataclass(frozen=True)
class ModelSpec:
    family: Family
    tasks: frozenset[str]  # data.task values the model can be trained on
    build: Callable[[ModelConfig, str, Vocabulary], nn.Module]  # (config, task, vocabulary) -> model
    description: str


def _hstu_encoder(config: ModelConfig, vocabulary: Vocabulary) -> nn.Module:
    return HSTUEncoder([
        HSTULayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            dropout=config.dropout,
            max_seq_len=vocabulary.max_seq_len,
            attention=config.attention,
            rab=config.rab,
            num_time_buckets=config.num_time_buckets,
            time_bucket_fn=config.time_bucket_fn,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ])


def _sasrec_encoder(config: ModelConfig, vocabulary: Vocabulary) -> nn.Module:
    ffn_dim = config.ffn_dim if config.ffn_dim is not None else config.embedding_dim
    layers = [
        SASRecLayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            ffn_dim=ffn_dim,
            dropout=config.dropout,
            max_seq_len=vocabulary.max_seq_len,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ]
    return SASRecEncoder(layers, config.embedding_dim)


def sequential_model(
    encoder_builder: Callable[[ModelConfig, Vocabulary], nn.Module], absolute_positions: bool = True
) -> Callable[[ModelConfig, str, Vocabulary], nn.Module]:
    """A builder that wraps an encoder in the retrieval or ranking model ``task`` calls for."""

    def build(config: ModelConfig, task: str, vocabulary: Vocabulary) -> nn.Module:
        backbone = SequenceBackbone(
            vocabulary, config.embedding_dim, config.dropout, encoder_builder(config, vocabulary), absolute_positions
        )
        if task == "ranking":
            return SequentialRankingModel(backbone, vocabulary.num_tasks, config.embedding_dim)
        return SequentialRetrievalModel(backbone)

    return build


MODELS: dict[str, ModelSpec] = {
    "hstu": ModelSpec("GR", SEQUENCE_TASKS, sequential_model(_hstu_encoder),
                      "HSTU generative recommender (pointwise attention, rab^{p,t})"),
    "sasrec": ModelSpec("GR", SEQUENCE_TASKS, sequential_model(_sasrec_encoder), "SASRec causal softmax Transformer"),
}


def build_model(config: ModelConfig, task: str, vocabulary: Vocabulary) -> nn.Module:
    """The network ``config.name`` names for ``task``, freshly initialised (seed the global RNG first)."""
    spec = MODELS[config.name]
    if task not in spec.tasks:
        raise ValueError(f"model {config.name!r} cannot be trained on data.task {task!r}; it supports {sorted(spec.tasks)}")
    return spec.build(config, task, vocabulary)


def model_family(name: str) -> Family:
    return MODELS[name].family
