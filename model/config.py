"""The model section of a run config: which network, the sizes every family scales, and per-family sections.

Shared keys (``model.name``, ``num_layers``, ``num_heads``, ``embedding_dim``, ``qk_dim``,
``v_dim``, ``dropout``, ``attention_backend``) sit on ``model``; the knobs only one family
reads sit in its own section: ``model.hstu``, ``model.transformer`` (SASRec, Transformer++) and
``model.dlrm`` (the DLRM baselines and two-tower). Which model reads which section is the
catalogue's word (:mod:`model.catalogue`); setting a key of a section the chosen model does not
read is an error, because a sweep axis the model ignores draws a flat line that looks like
saturation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from core.configtools import ConfigError, option, require
from model.catalogue import SECTIONS, model_names, model_spec, models_reading

DHENModuleName = Literal["attention", "cross", "linear", "mlp", "dot"]


@dataclass(frozen=True)
class HSTUConfig:
    """``model.hstu``: HSTU's aggregation and relative attention bias (read by hstu)."""

    attention: Literal["pointwise", "softmax"] = option(
        "pointwise", "HSTU aggregation: pointwise SiLU (Eq. 2) or the softmax ablation (Table 5)"
    )
    rab: Literal["pos_time", "pos", "none"] = option(
        "pos_time", "HSTU relative attention bias: position and time, position only, or none"
    )
    num_time_buckets: int = option(128, "time-gap buckets of the relative attention bias")
    time_bucket_fn: Literal["log", "sqrt"] = option("log", "bucketisation of time gaps |t_q - t_k| (seconds)")

    def __post_init__(self) -> None:
        require(self.num_time_buckets >= 1, "num_time_buckets", f"must be >= 1; got {self.num_time_buckets}")


@dataclass(frozen=True)
class TransformerConfig:
    """``model.transformer``: the softmax Transformers' feed-forward block (SASRec, Transformer++, ...)."""

    ffn_dim: int | None = option(
        None, "feed-forward width (null: embedding_dim for SASRec; 8/3 embedding_dim rounded up to 8 for transformerpp's SwiGLU)"
    )

    def __post_init__(self) -> None:
        require(self.ffn_dim is None or self.ffn_dim >= 1, "ffn_dim", f"must be >= 1 or null; got {self.ffn_dim}")


@dataclass(frozen=True)
class DLRMConfig:
    """``model.dlrm``: the DLRM baselines' knobs (MLPs, multi-task top, history pooling, cross and ensemble modules).

    The models reading it also read the shared model.num_layers, embedding_dim, dropout (on MLP
    hidden activations) and, for DHEN's attention, num_heads, qk_dim and v_dim. The catalogue
    (model/catalogue.py, ``scaling config --models``) says which models read this section.
    """

    hidden_dim: int = option(256, "width of MLP hidden layers (bottom, top, deep, experts, towers)")
    mlp_layers: int = option(2, "hidden layers of the top MLP / deep network / each MMoE expert")
    top: Literal["mlp", "mmoe"] = option("mlp", "multi-task top, a shared MLP or MMoE (the mmoe model is always MMoE)")
    num_experts: int = option(4, "MMoE: experts shared by the tasks")
    sequence_module: Literal["mean", "din"] = option(
        "mean", "history pooling, mean or DIN target attention (the din model is always DIN)"
    )
    history_len: int = option(50, "K most recent earlier items per impression")
    low_rank: int = option(0, "DCN-v2 and DHEN cross: rank r of W = U V^T (0: full-rank W)")
    cross_experts: int = option(1, "DCN-v2: low-rank experts per cross layer (DCN-Mix when > 1; needs low_rank > 0)")
    cross_structure: Literal["stacked", "parallel"] = option(
        "stacked", "DCN-v2: deep network after the cross network (stacked) or beside it (parallel)"
    )
    dhen_modules: tuple[DHENModuleName, ...] = option(
        ("attention", "cross", "dot", "mlp"), "DHEN: interaction modules ensembled in every layer"
    )

    def __post_init__(self) -> None:
        for key in ("hidden_dim", "num_experts", "history_len", "cross_experts"):
            require(getattr(self, key) >= 1, key, f"must be >= 1; got {getattr(self, key)}")
        for key in ("mlp_layers", "low_rank"):
            require(getattr(self, key) >= 0, key, f"must be >= 0; got {getattr(self, key)}")
        require(
            self.cross_experts == 1 or self.low_rank > 0,
            "cross_experts",
            f"is {self.cross_experts}, but DCN-Mix experts are low-rank; set model.dlrm.low_rank >= 1 (e.g. 64) "
            "or model.dlrm.cross_experts: 1",
        )
        require(len(self.dhen_modules) >= 1, "dhen_modules", "must name at least one module")
        require(
            len(set(self.dhen_modules)) == len(self.dhen_modules),
            "dhen_modules",
            f"lists a module twice: {list(self.dhen_modules)}; name each at most once",
        )


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("hstu", f"network, one of {', '.join(model_names())} (`scaling config --models` describes each)")
    num_layers: int = option(
        2, "stacked layers: encoder layers (GR), cross layers (dcnv2), ensemble layers (dhen), blocks per tower (two_tower)"
    )
    num_heads: int = option(1, "attention heads per layer")
    embedding_dim: int = option(50, "item embedding and model width d")
    qk_dim: int | None = option(None, "query/key width per head d_qk (null: embedding_dim / num_heads)")
    v_dim: int | None = option(None, "value/gate width per head d_v (null: embedding_dim / num_heads)")
    dropout: float = option(0.2, "dropout rate on embeddings and layer outputs")
    attention_backend: Literal["auto", "reference", "cpu", "triton"] = option(
        "auto", "attention kernel: auto (triton on CUDA, cpu on CPU), reference (padded PyTorch oracle), "
        "cpu (length-grouped PyTorch, CPU only) or triton"
    )
    # Per-family sections; `scaling config --models` says which model reads which.
    hstu: HSTUConfig = option(HSTUConfig, "HSTU's attention and relative attention bias")
    transformer: TransformerConfig = option(TransformerConfig, "the softmax Transformers' feed-forward block")
    dlrm: DLRMConfig = option(DLRMConfig, "the DLRM baselines' MLPs, tops, pooling, cross and ensemble modules")

    def __post_init__(self) -> None:
        require(self.name in model_names(), "name",
                f"must be one of {', '.join(repr(n) for n in model_names())}; got {self.name!r}")
        require(self.num_layers >= 1, "num_layers", f"must be >= 1; got {self.num_layers}")
        require(self.num_heads >= 1, "num_heads", f"must be >= 1; got {self.num_heads}")
        require(self.embedding_dim >= 1, "embedding_dim", f"must be >= 1; got {self.embedding_dim}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1); got {self.dropout}")
        for key in ("qk_dim", "v_dim"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, f"must be >= 1 or null; got {value}")
            require(
                value is not None or self.embedding_dim % self.num_heads == 0,
                key,
                f"is null, so embedding_dim ({self.embedding_dim}) must be divisible by num_heads "
                f"({self.num_heads}); set {key} explicitly or change num_heads",
            )
        self._check_unread_sections()
        for check in model_spec(self.name).checks:
            check(self)

    def _check_unread_sections(self) -> None:
        """A section the model does not read must keep its defaults: a value there would silently do nothing."""
        reads = model_spec(self.name).sections
        for section in SECTIONS:
            if section in reads:
                continue
            values = getattr(self, section)
            defaults = type(values)()
            for field in dataclasses.fields(values):
                if getattr(values, field.name) != getattr(defaults, field.name):
                    raise ConfigError(
                        f"{section}.{field.name}",
                        f"{self.name} does not read the model.{section} section; remove it or choose a model that "
                        f"reads it ({', '.join(models_reading(section))})",
                    )

    @property
    def head_qk_dim(self) -> int:
        return self.qk_dim if self.qk_dim is not None else self.embedding_dim // self.num_heads

    @property
    def head_v_dim(self) -> int:
        return self.v_dim if self.v_dim is not None else self.embedding_dim // self.num_heads

