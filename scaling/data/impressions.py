"""Batches of DLRM impressions with the same interface as :class:`~scaling.data.batching.SequenceBatcher`.

An impression is one target event: the DLRM scores the event's item for its user from causal
hand-crafted features (``scaling/data/features.py``) and predicts the event's task labels. The
training loop asks for "chunks" of target events and batches of them exactly as it does for
sequence models, so both families train on the same targets in the same regimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from model.inputs import ImpressionFeatures
from scaling.data.batching import ChunkOrder, visiting_order
from scaling.data.features import DenseStandardizer, ImpressionFeaturizer, impression_labels
from scaling.data.sequences import SequenceDataset

STANDARDIZER_SAMPLE = 200_000  # training impressions used to fit the dense-feature standardiser
FEATURIZE_BLOCK = 4096  # impressions featurised per call when batching (whole batches; at least one)


@dataclass(frozen=True)
class ImpressionBatch:
    features: ImpressionFeatures
    labels: Tensor  # [N, K]
    target_events: Tensor  # [N]

    @property
    def num_targets(self) -> int:
        return self.target_events.numel()

    def rows(self, rows: slice) -> "ImpressionBatch":
        """The impressions ``rows`` of this batch (views, no copy)."""
        features = ImpressionFeatures(*(getattr(self.features, f.name)[rows] for f in fields(ImpressionFeatures)))
        return ImpressionBatch(features, self.labels[rows], self.target_events[rows])

    def to(self, device: torch.device | str) -> "ImpressionBatch":
        return ImpressionBatch(self.features.to(device), self.labels.to(device), self.target_events.to(device))


@dataclass(frozen=True)
class ImpressionChunks:
    events: np.ndarray  # [N] target events
    time: np.ndarray  # [N] their timestamps, for time-ordered passes


class ImpressionBatcher:
    def __init__(self, dataset: SequenceDataset, history_len: int) -> None:
        self.dataset = dataset
        self.featurizer = ImpressionFeaturizer(dataset, history_len)
        self.standardizer: DenseStandardizer | None = None

    @property
    def spec(self):
        return self.featurizer.spec

    def supervisable(self) -> np.ndarray:
        """[E] every event with labels is an impression."""
        return np.ones(self.dataset.num_interactions, dtype=bool)

    def fit_standardizer(self, training_events: np.ndarray, rng: np.random.Generator) -> None:
        """Standardise dense features with statistics of (a sample of) training impressions only."""
        sample = training_events
        if len(sample) > STANDARDIZER_SAMPLE:
            sample = np.sort(rng.choice(sample, STANDARDIZER_SAMPLE, replace=False))
        self.standardizer = DenseStandardizer.fit(self.featurizer(sample).dense)

    def chunks(self, target_events: np.ndarray) -> ImpressionChunks:
        events = np.sort(target_events)
        return ImpressionChunks(events, self.dataset.timestamps[events])

    def batches(self, chunks: ImpressionChunks, batch_size: int, order: ChunkOrder,
                rng: np.random.Generator | None = None) -> Iterator[ImpressionBatch]:
        """Batches of ``batch_size`` impressions, shuffled or in time order.

        Features are computed for several consecutive batches at once (about FEATURIZE_BLOCK
        impressions) and sliced: each impression's features depend on it alone, so the batches are
        the same, while the featurizer's fixed cost per call (some sixty small numpy operations)
        is paid once per block rather than once per batch.
        """
        sequence = visiting_order(chunks.time, order, rng)
        block = batch_size * max(1, FEATURIZE_BLOCK // batch_size)
        for block_start in range(0, len(sequence), block):
            featurised = self.batch(chunks.events[sequence[block_start : block_start + block]])
            for first in range(0, featurised.num_targets, batch_size):
                yield featurised.rows(slice(first, first + batch_size))

    def batch(self, events: np.ndarray) -> ImpressionBatch:
        if self.standardizer is None:
            raise RuntimeError("fit_standardizer must be called on training impressions before batching")
        features = self.standardizer(self.featurizer(events))
        return ImpressionBatch(features, impression_labels(self.dataset, events), torch.from_numpy(events.astype(np.int64)))
