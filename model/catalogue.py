"""The model catalogue: what each network is, without torch, so configs, sweeps and the CLI can ask.

``model.name`` -> :class:`ModelSpec`: its family (GR or DLRM), the input it reads (token
sequences or impression features), the ``data.task`` values it can be trained on, the model
config sections it reads (``model.hstu``, ``model.transformer``, ``model.dlrm``; the shared
``model`` keys are read by every model), a one-line description and its own cross-field checks.

The builders (torch) live in :mod:`model.registry`, keyed by the same names. Adding a model
family is one entry here, one builder there and the network's own module (see
``tests/model/test_catalogue.py``, which adds a toy model that way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from core.configtools import require
from core.results_schema import TASKS, Family

if TYPE_CHECKING:  # for annotations only: model.config asks this module, not the other way round
    from model.config import ModelConfig

InputKind = Literal["sequence", "impressions"]
Section = Literal["hstu", "transformer", "dlrm"]  # the per-family sections of model.config.ModelConfig
SECTIONS: tuple[Section, ...] = get_args(Section)
ModelCheck = Callable[["ModelConfig"], None]  # raises a ConfigError (key relative to the model section)

SEQUENCE_TASKS = frozenset(TASKS)
RANKING = frozenset({"ranking"})


@dataclass(frozen=True)
class ModelSpec:
    family: Family  # GR: generative recommenders and Transformers; DLRM: the deep-learning recommender baselines
    input: InputKind  # sequence: jagged token sequences (data.max_seq_len); impressions: hand-crafted features
    tasks: frozenset[str]  # data.task values the model can be trained on
    sections: frozenset[Section]  # model config sections it reads besides the shared keys
    description: str  # one line, shown by `scaling config --models`
    checks: tuple[ModelCheck, ...] = ()  # cross-field checks of its config that only this model needs


# --- model-specific cross-field checks ---------------------------------------------------------


def even_rotary_width(config: ModelConfig) -> None:
    """RoPE rotates channel pairs, so the per-head query/key width must be even."""
    require(
        config.head_qk_dim % 2 == 0,
        "qk_dim",
        f"must be even for {config.name} (RoPE rotates channel pairs); the per-head width is {config.head_qk_dim}: "
        "set model.qk_dim or change model.embedding_dim / model.num_heads",
    )


EXPERT_LAYERS = "must be >= 1 with an MMoE top (each expert is an MLP with model.dlrm.mlp_layers hidden layers)"


def mmoe_top_has_expert_layers(config: ModelConfig) -> None:
    """A DLRM whose top is MMoE (model.dlrm.top: mmoe) builds each expert with mlp_layers hidden layers."""
    require(config.dlrm.top != "mmoe" or config.dlrm.mlp_layers >= 1, "dlrm.mlp_layers", EXPERT_LAYERS)


def mmoe_experts_have_layers(config: ModelConfig) -> None:
    """The mmoe model is always an MMoE, whatever model.dlrm.top says."""
    require(config.dlrm.mlp_layers >= 1, "dlrm.mlp_layers", EXPERT_LAYERS)


def parallel_dcn_has_deep_network(config: ModelConfig) -> None:
    require(
        config.dlrm.cross_structure != "parallel" or config.dlrm.mlp_layers >= 1,
        "dlrm.mlp_layers",
        "must be >= 1 for the parallel DCN-v2 (the deep network beside the cross network has "
        "model.dlrm.mlp_layers layers)",
    )


# --- the catalogue -----------------------------------------------------------------------------

_DLRM = frozenset({"dlrm"})

MODELS: dict[str, ModelSpec] = {
    "hstu": ModelSpec("GR", "sequence", SEQUENCE_TASKS, frozenset({"hstu"}),
                      "HSTU generative recommender (pointwise attention, rab^{p,t})"),
    "sasrec": ModelSpec("GR", "sequence", SEQUENCE_TASKS, frozenset({"transformer"}),
                        "SASRec causal softmax Transformer"),
    "transformerpp": ModelSpec("GR", "sequence", SEQUENCE_TASKS, frozenset({"transformer"}),
                               "Transformer++ (LLaMA-style: RMSNorm, RoPE, SwiGLU; Table 5)", (even_rotary_width,)),
    "two_tower": ModelSpec("DLRM", "sequence", frozenset({"retrieval"}), _DLRM,
                           "two-tower retrieval: mean-pooled history and item towers (reads model.dlrm.hidden_dim)"),
    "dlrm": ModelSpec("DLRM", "impressions", RANKING, _DLRM, "DLRM: bottom MLP, pairwise dot interaction, top",
                      (mmoe_top_has_expert_layers,)),
    "dcnv2": ModelSpec("DLRM", "impressions", RANKING, _DLRM,
                       "DCN-v2: full/low-rank or mixture cross network with a deep network",
                       (mmoe_top_has_expert_layers, parallel_dcn_has_deep_network)),
    "dhen": ModelSpec("DLRM", "impressions", RANKING, _DLRM,
                      "DHEN: stacked ensembles of heterogeneous interaction modules", (mmoe_top_has_expert_layers,)),
    "mmoe": ModelSpec("DLRM", "impressions", RANKING, _DLRM, "MMoE: shared experts with a softmax gate per task",
                      (mmoe_experts_have_layers,)),
    "din": ModelSpec("DLRM", "impressions", RANKING, _DLRM, "DIN: target attention over the history, then an MLP",
                     (mmoe_top_has_expert_layers,)),
}


def model_names() -> tuple[str, ...]:
    return tuple(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The catalogue entry of ``name`` (a validated config's model.name is always in the catalogue)."""
    return MODELS[name]


def models_reading(section: Section) -> tuple[str, ...]:
    return tuple(name for name, spec in MODELS.items() if section in spec.sections)


def check_task(name: str, task: str) -> None:
    """Raise a ConfigError on ``model.name`` unless model ``name`` can be trained on ``data.task`` ``task``."""
    tasks = model_spec(name).tasks
    require(task in tasks, "model.name",
            f"model {name!r} cannot be trained on data.task {task!r}; it supports {', '.join(sorted(tasks))}")
