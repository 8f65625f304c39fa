"""What tests of whole runs share: the overrides of a tiny retrieval run that trains in seconds on the CPU."""

from __future__ import annotations

# HSTU (the default model) on 300 synthetic Dirichlet-process records of 24 items; callers add the epochs.
TINY_RUN = [
    "data.dataset=synthetic-dp",
    "data.synthetic_dp.num_items=200",
    "data.synthetic_dp.num_categories=10",
    "data.synthetic_dp.num_records=300",
    "data.synthetic_dp.record_length=24",
    "data.max_seq_len=24",
    "model.embedding_dim=16",
    "model.num_heads=2",
    "model.dropout=0.0",
    "train.batch_size=32",
    "train.num_negatives=32",
    "train.lr=0.005",
    "eval.batch_size=128",
]
