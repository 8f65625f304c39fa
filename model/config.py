"""The model section of a run config: which network, and the size knobs a sweep turns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scaling.configtools import option, require

ModelName = Literal["hstu", "sasrec", "transformerpp"]


@dataclass(frozen=True)
class ModelConfig:
    name: ModelName = option("hstu", "registry name of the network")
    num_layers: int = option(2, "number of stacked encoder layers")
    num_heads: int = option(1, "attention heads per layer")
    embedding_dim: int = option(50, "item embedding and model width d")
    qk_dim: int | None = option(None, "query/key width per head d_qk (null: embedding_dim / num_heads)")
    v_dim: int | None = option(None, "value/gate width per head d_v (null: embedding_dim / num_heads)")
    dropout: float = option(0.2, "dropout rate on embeddings and layer outputs")
    attention: Literal["pointwise", "softmax"] = option(
        "pointwise", "HSTU aggregation: pointwise SiLU (Eq. 2) or the softmax ablation (Table 5)"
    )
    rab: Literal["pos_time", "pos", "none"] = option(
        "pos_time", "HSTU relative attention bias: position and time, position only, or none"
    )
    num_time_buckets: int = option(128, "time-gap buckets of the relative attention bias")
    time_bucket_fn: Literal["log", "sqrt"] = option("log", "bucketisation of time gaps |t_q - t_k| (seconds)")
    ffn_dim: int | None = option(
        None, "feed-forward width (null: embedding_dim for SASRec; 8/3 embedding_dim rounded up to 8 for transformerpp's SwiGLU)"
    )
    attention_backend: Literal["auto", "reference", "triton"] = option(
        "auto", "attention kernel: auto (Triton on CUDA, PyTorch reference on CPU), reference or triton"
    )

    def __post_init__(self) -> None:
        require(self.num_layers >= 1, "num_layers", f"must be >= 1; got {self.num_layers}")
        require(self.num_heads >= 1, "num_heads", f"must be >= 1; got {self.num_heads}")
        require(self.embedding_dim >= 1, "embedding_dim", f"must be >= 1; got {self.embedding_dim}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1); got {self.dropout}")
        require(self.num_time_buckets >= 1, "num_time_buckets", f"must be >= 1; got {self.num_time_buckets}")
        for key in ("qk_dim", "v_dim"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, f"must be >= 1 or null; got {value}")
            require(
                value is not None or self.embedding_dim % self.num_heads == 0,
                key,
                f"is null, so embedding_dim ({self.embedding_dim}) must be divisible by num_heads "
                f"({self.num_heads}); set {key} explicitly or change num_heads",
            )
        require(self.ffn_dim is None or self.ffn_dim >= 1, "ffn_dim", f"must be >= 1 or null; got {self.ffn_dim}")
        require(
            self.name != "transformerpp" or self.head_qk_dim % 2 == 0,
            "qk_dim",
            f"must be even for transformerpp (RoPE rotates channel pairs); the per-head width is {self.head_qk_dim}: "
            "set model.qk_dim or change embedding_dim / num_heads",
        )

    @property
    def head_qk_dim(self) -> int:
        return self.qk_dim if self.qk_dim is not None else self.embedding_dim // self.num_heads

    @property
    def head_v_dim(self) -> int:
        return self.v_dim if self.v_dim is not None else self.embedding_dim // self.num_heads
