"""Model builders: ``model.name`` -> a freshly constructed network, keyed by the catalogue's names.

What each model is (family, input, tasks, the config sections it reads) is the catalogue's word
(:mod:`model.catalogue`, torch-free); this module only builds. Sequence models (``hstu``,
``sasrec``, ``transformerpp``, ``two_tower``) read :class:`~model.inputs.JaggedSequences` and are
built from the data's :class:`~model.inputs.Vocabulary`; impression models (the DLRM ranking
baselines) read :class:`~model.inputs.ImpressionFeatures` and are built from a
:class:`~model.inputs.FeatureSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from model.baselines.dcnv2 import DCNv2
from model.baselines.dhen import DHEN
from model.baselines.din import DIN, make_history_pooling
from model.baselines.dlrm import DLRM
from model.baselines.mlp import TopFactory
from model.baselines.mmoe import MMoEModel, multitask_top
from model.baselines.two_tower import TwoTower
from model.catalogue import check_task
from model.config import ModelConfig
from model.hstu import HSTUEncoder, HSTULayer
from model.inputs import FeatureSpec, Vocabulary
from model.recommender import SequenceBackbone, SequentialRankingModel, SequentialRetrievalModel
from model.sasrec import SASRecEncoder, SASRecLayer
from model.transformerpp import TransformerPPEncoder, TransformerPPLayer, swiglu_hidden_dim


@dataclass(frozen=True)
class ModelInputs:
    """What the data tells a builder: vocabulary sizes, and per-kind extras."""

    vocabulary: Vocabulary
    features: FeatureSpec | None = None  # impression models: feature dimensions and vocabularies
    item_categories: Tensor | None = None  # [num_items + 1] side information (two_tower's item tower)


Builder = Callable[[ModelConfig, str, ModelInputs], nn.Module]  # (config, task, inputs) -> model


def _hstu_encoder(config: ModelConfig, vocabulary: Vocabulary) -> nn.Module:
    return HSTUEncoder([
        HSTULayer(
            embedding_dim=config.embedding_dim,
            num_heads=config.num_heads,
            qk_dim=config.head_qk_dim,
            v_dim=config.head_v_dim,
            dropout=config.dropout,
            max_seq_len=vocabulary.max_seq_len,
            attention=config.hstu.attention,
            rab=config.hstu.rab,
            num_time_buckets=config.hstu.num_time_buckets,
            time_bucket_fn=config.hstu.time_bucket_fn,
            attention_backend=config.attention_backend,
        )
        for _ in range(config.num_layers)
    ])


def _transformer_encoder(
    layer_type: type[SASRecLayer] | type[TransformerPPLayer],
    encoder_type: type[SASRecEncoder] | type[TransformerPPEncoder],
    default_ffn_dim: Callable[[int], int],
) -> Callable[[ModelConfig, Vocabulary], nn.Module]:
    """A softmax-Transformer encoder builder (SASRec, Transformer++): they differ in layer, final norm and FFN width."""

    def build(config: ModelConfig, vocabulary: Vocabulary) -> nn.Module:
        ffn_dim = config.transformer.ffn_dim if config.transformer.ffn_dim is not None else default_ffn_dim(config.embedding_dim)
        layers = [
            layer_type(
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
        return encoder_type(layers, config.embedding_dim)

    return build


_sasrec_encoder = _transformer_encoder(SASRecLayer, SASRecEncoder, default_ffn_dim=lambda embedding_dim: embedding_dim)
_transformerpp_encoder = _transformer_encoder(TransformerPPLayer, TransformerPPEncoder, default_ffn_dim=swiglu_hidden_dim)


def sequential_model(
    encoder_builder: Callable[[ModelConfig, Vocabulary], nn.Module], absolute_positions: bool = True
) -> Builder:
    """A builder that wraps an encoder in the retrieval or ranking model ``task`` calls for."""

    def build(config: ModelConfig, task: str, inputs: ModelInputs) -> nn.Module:
        vocabulary = inputs.vocabulary
        backbone = SequenceBackbone(
            vocabulary, config.embedding_dim, config.dropout, encoder_builder(config, vocabulary), absolute_positions
        )
        if task == "ranking":
            return SequentialRankingModel(backbone, vocabulary.num_tasks, config.embedding_dim)
        return SequentialRetrievalModel(backbone)

    return build


def impression_model(build_ranking: Callable[[ModelConfig, FeatureSpec], nn.Module]) -> Builder:
    """A builder for a DLRM ranking model from the data's impression feature spec."""

    def build(config: ModelConfig, task: str, inputs: ModelInputs) -> nn.Module:
        if inputs.features is None:
            raise ValueError(f"model '{config.name}' reads impression features; none were given")
        return build_ranking(config, inputs.features)

    return build


def _build_two_tower(config: ModelConfig, task: str, inputs: ModelInputs) -> nn.Module:
    categories = inputs.item_categories
    num_categories = int(categories.max().item()) if categories is not None else 0
    return TwoTower(
        inputs.vocabulary.num_items, config.embedding_dim, config.dlrm.hidden_dim, config.num_layers, config.dropout,
        categories, num_categories,
    )


def _top(config: ModelConfig, features: FeatureSpec, mlp_layers: int | None = None) -> TopFactory:
    layers = config.dlrm.mlp_layers if mlp_layers is None else mlp_layers
    return multitask_top(config.dlrm.top, features.num_tasks, config.dlrm.hidden_dim, layers, config.dlrm.num_experts, config.dropout)


def _pooling(config: ModelConfig) -> nn.Module:
    return make_history_pooling(config.dlrm.sequence_module, config.embedding_dim)


def _build_dlrm(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DLRM(features, config.embedding_dim, config.dlrm.hidden_dim, _pooling(config), _top(config, features), config.dropout)


def _build_dcnv2(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    parallel = config.dlrm.cross_structure == "parallel"
    # Parallel, the deep network sits beside the cross network, so an MLP top is the paper's
    # logistic layer over their concatenation; stacked, the MLP top *is* the deep network.
    top = _top(config, features, mlp_layers=0 if parallel and config.dlrm.top == "mlp" else None)
    return DCNv2(
        features,
        config.embedding_dim,
        _pooling(config),
        config.num_layers,
        top,
        structure=config.dlrm.cross_structure,
        rank=config.dlrm.low_rank,
        cross_experts=config.dlrm.cross_experts,
        deep_hidden=(config.dlrm.hidden_dim,) * config.dlrm.mlp_layers,
        dropout=config.dropout,
    )


def _build_dhen(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DHEN(
        features,
        config.embedding_dim,
        _pooling(config),
        config.dlrm.dhen_modules,
        config.num_layers,
        _top(config, features),
        hidden_dim=config.dlrm.hidden_dim,
        rank=config.dlrm.low_rank,
        num_heads=config.num_heads,
        qk_dim=config.head_qk_dim,
        v_dim=config.head_v_dim,
    )


def _build_mmoe(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    hidden = (config.dlrm.hidden_dim,) * config.dlrm.mlp_layers
    return MMoEModel(
        features, config.embedding_dim, _pooling(config), config.dlrm.num_experts, hidden, config.dlrm.hidden_dim, config.dropout
    )


def _build_din(config: ModelConfig, features: FeatureSpec) -> nn.Module:
    return DIN(features, config.embedding_dim, _top(config, features))


# One builder per catalogue name (model/catalogue.py says what each model is; a test keeps the keys equal).
BUILDERS: dict[str, Builder] = {
    "hstu": sequential_model(_hstu_encoder),
    "sasrec": sequential_model(_sasrec_encoder),
    # RoPE carries positions, so Transformer++'s input layer adds no absolute position embedding.
    "transformerpp": sequential_model(_transformerpp_encoder, absolute_positions=False),
    "two_tower": _build_two_tower,
    "dlrm": impression_model(_build_dlrm),
    "dcnv2": impression_model(_build_dcnv2),
    "dhen": impression_model(_build_dhen),
    "mmoe": impression_model(_build_mmoe),
    "din": impression_model(_build_din),
}


def build_model(config: ModelConfig, task: str, inputs: ModelInputs | Vocabulary) -> nn.Module:
    """The network ``config.name`` names for ``task``, freshly initialised (seed the global RNG first)."""
    check_task(config.name, task)
    if isinstance(inputs, Vocabulary):
        inputs = ModelInputs(inputs)
    return BUILDERS[config.name](config, task, inputs)
