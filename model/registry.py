"""Model registry: ``model.name`` -> a constructed network and its family (GR or DLRM)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from model.config import ModelConfig
from model.hstu import HSTUEncoder, HSTULayer
from model.recommender import SequentialRetrievalModel
from model.sasrec import SASRecEncoder, SASRecLayer
from model.transformerpp import TransformerPPEncoder, TransformerPPLayer, swiglu_hidden_dim

Family = Literal["GR", "DLRM"]


@dataclass(frozen=True)
class ModelSpec:
    family: Family
    build: Callable[[ModelConfig, int, int], nn.Module]  # (config, num_items, max_seq_len) -> model
    description: str


def _build_hstu(config: ModelConfig, num_items: int, max_seq_len: int) -> nn.Module:
    layers = [
        HSTULayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            dropout=config.dropout,
            max_seq_len=max_seq_len,
            attention=config.attention,
            rab=config.rab,
            num_time_buckets=config.num_time_buckets,
            time_bucket_fn=config.time_bucket_fn,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ]
    return SequentialRetrievalModel(num_items, config.embedding_dim, max_seq_len, config.dropout, HSTUEncoder(layers))


def _build_sasrec(config: ModelConfig, num_items: int, max_seq_len: int) -> nn.Module:
    ffn_dim = config.ffn_dim if config.ffn_dim is not None else config.embedding_dim
    layers = [
        SASRecLayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            ffn_dim=ffn_dim,
            dropout=config.dropout,
            max_seq_len=max_seq_len,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ]
    encoder = SASRecEncoder(layers, config.embedding_dim)
    return SequentialRetrievalModel(num_items, config.embedding_dim, max_seq_len, config.dropout, encoder)


def _build_transformerpp(config: ModelConfig, num_items: int, max_seq_len: int) -> nn.Module:
    ffn_dim = config.ffn_dim if config.ffn_dim is not None else swiglu_hidden_dim(config.embedding_dim)
    layers = [
        TransformerPPLayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            ffn_dim=ffn_dim,
            dropout=config.dropout,
            max_seq_len=max_seq_len,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ]
    encoder = TransformerPPEncoder(layers, config.embedding_dim)
    # RoPE carries positions, so the input layer adds no absolute position embedding.
    return SequentialRetrievalModel(
        num_items, config.embedding_dim, max_seq_len, config.dropout, encoder, absolute_positions=False
    )


MODELS: dict[str, ModelSpec] = {
    "hstu": ModelSpec("GR", _build_hstu, "HSTU generative recommender (pointwise attention, rab^{p,t})"),
    "sasrec": ModelSpec("GR", _build_sasrec, "SASRec causal softmax Transformer"),
    "transformerpp": ModelSpec("GR", _build_transformerpp, "Transformer++ (LLaMA-style: RMSNorm, RoPE, SwiGLU; Table 5)"),
}


def build_model(config: ModelConfig, num_items: int, max_seq_len: int) -> nn.Module:
    """The network ``config.name`` names, freshly initialised (seed the global RNG first)."""
    return MODELS[config.name].build(config, num_items, max_seq_len)


def model_family(name: str) -> Family:
    return MODELS[name].family
