"""Model registry: ``model.name`` -> a constructed network, its family (GR or DLRM) and its task.

Retrieval models (``hstu``, ``sasrec``, ``two_tower``) are built from the item vocabulary and
read :class:`~model.inputs.JaggedSequences`; ranking models (the DLRM baselines) are built from
a :class:`~model.inputs.FeatureSpec` and read :class:`~model.inputs.ImpressionFeatures`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from model.baselines.dcnv2 import DCNv2
from model.baselines.dhen import DHEN
from model.baselines.din import DIN, make_history_pooling
from model.baselines.dlrm import DLRM
from model.baselines.mlp import TopFactory
from model.baselines.mmoe import MMoEModel, multitask_top
from model.baselines.two_tower import TwoTower
from model.config import ModelConfig
from model.hstu import HSTUEncoder, HSTULayer
from model.inputs import FeatureSpec
from model.recommender import SequentialRetrievalModel
from model.sasrec import SASRecEncoder, SASRecLayer

Family = Literal["GR", "DLRM"]
Task = Literal["retrieval", "ranking"]
# (config, num_items, max_seq_len, item_categories [num_items + 1] or None) -> model
RetrievalBuilder = Callable[[ModelConfig, int, int, Tensor | None], nn.Module]
RankingBuilder = Callable[[ModelConfig, FeatureSpec], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    family: Family
    build: RetrievalBuilder | None  # retrieval models
    description: str
    build_ranking: RankingBuilder | None = None  # ranking models

    @property
    def task(self) -> Task:
        return "retrieval" if self.build is not None else "ranking"


def _build_hstu(config: ModelConfig, num_items: int, max_seq_len: int, item_categories: Tensor | None) -> nn.Module:
    # GR models read only the item sequence; side tables such as item categories are unused.
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


def _build_sasrec(config: ModelConfig, num_items: int, max_seq_len: int, item_categories: Tensor | None) -> nn.Module:
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


def _build_two_tower(config: ModelConfig, num_items: int, max_seq_len: int, item_categories: Tensor | None) -> nn.Module:
    num_categories = int(item_categories.max().item()) if item_categories is not None else 0
    return TwoTower(
        num_items, config.embedding_dim, config.hidden_dim, config.num_layers, config.dropout, item_categories, num_categories
    )


def _top(config: ModelConfig, features: FeatureSpec, mlp_layers: int | None = None) -> TopFactory:
    layers = config.mlp_layers if mlp_layers is None else mlp_layers
    return multitask_top(config.top, features.num_tasks, config.hidden_dim, layers, config.num_experts, config.dropout)


def _pooling(config: ModelConfig) -> nn.Module:
    return make_history_pooling(config.sequence_module, config.embedding_dim)


def _build_dlrm(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DLRM(features, config.embedding_dim, config.hidden_dim, _pooling(config), _top(config, features), config.dropout)


def _build_dcnv2(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    parallel = config.cross_structure == "parallel"
    # Parallel, the deep network sits beside the cross network, so an MLP top is the paper's
    # logistic layer over their concatenation; stacked, the MLP top *is* the deep network.
    top = _top(config, features, mlp_layers=0 if parallel and config.top == "mlp" else None)
    return DCNv2(
        features,
        config.embedding_dim,
        _pooling(config),
        config.num_layers,
        top,
        structure=config.cross_structure,
        rank=config.low_rank,
        cross_experts=config.cross_experts,
        deep_hidden=(config.hidden_dim,) * config.mlp_layers,
        dropout=config.dropout,
    )


def _build_dhen(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DHEN(
        features,
        config.embedding_dim,
        _pooling(config),
        config.dhen_modules,
        config.num_layers,
        _top(config, features),
        hidden_dim=config.hidden_dim,
        rank=config.low_rank,
        num_heads=config.num_heads,
        qk_dim=config.head_qk_dim,
        v_dim=config.head_v_dim,
    )


def _build_mmoe(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    hidden = (config.hidden_dim,) * config.mlp_layers
    return MMoEModel(
        features, config.embedding_dim, _pooling(config), config.num_experts, hidden, config.hidden_dim, config.dropout
    )


def _build_din(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DIN(features, config.embedding_dim, _top(config, features))


MODELS: dict[str, ModelSpec] = {
    "hstu": ModelSpec("GR", _build_hstu, "HSTU generative recommender (pointwise attention, rab^{p,t})"),
    "sasrec": ModelSpec("GR", _build_sasrec, "SASRec causal softmax Transformer"),
    "two_tower": ModelSpec("DLRM", _build_two_tower, "two-tower retrieval: mean-pooled history and item towers"),
    "dlrm": ModelSpec("DLRM", None, "DLRM: bottom MLP, pairwise dot interaction, top", _build_dlrm),
    "dcnv2": ModelSpec("DLRM", None, "DCN-v2: full/low-rank or mixture cross network with a deep network", _build_dcnv2),
    "dhen": ModelSpec("DLRM", None, "DHEN: stacked ensembles of heterogeneous interaction modules", _build_dhen),
    "mmoe": ModelSpec("DLRM", None, "MMoE: shared experts with a softmax gate per task", _build_mmoe),
    "din": ModelSpec("DLRM", None, "DIN: target attention over the history, then an MLP", _build_din),
}


def build_model(config: ModelConfig, num_items: int, max_seq_len: int, item_categories: Tensor | None = None) -> nn.Module:
    """The retrieval network ``config.name`` names, freshly initialised (seed the global RNG first).

    ``item_categories`` [num_items + 1] (0 = unknown) is side information a retrieval model may
    use (two_tower's item tower); GR models ignore it.
    """
    spec = MODELS[config.name]
    if spec.build is None:
        raise ValueError(f"model '{config.name}' is a ranking model; build it with build_ranking_model(config, feature_spec)")
    return spec.build(config, num_items, max_seq_len, item_categories)


def build_ranking_model(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    """The ranking network ``config.name`` names, for impressions described by ``features``."""
    spec = MODELS[config.name]
    if spec.build_ranking is None:
        raise ValueError(
            f"model '{config.name}' is a retrieval model; build it with build_model(config, num_items, max_seq_len)"
        )
    return spec.build_ranking(config, features)


def model_family(name: str) -> Family:
    return MODELS[name].family


def model_task(name: str) -> Task:
    return MODELS[name].task
