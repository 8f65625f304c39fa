"""The oracle's ranking metrics: the true probabilities scored with the models' own NE, on any events."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scaling.config import SyntheticIndustrialConfig
from scaling.data.synthetic_industrial import generate_synthetic_industrial
from scaling.metrics import oracle_ranking_metrics, ranking_metrics

STREAM = SyntheticIndustrialConfig(num_users=400, num_items=1000, num_categories=20, mean_events_per_user=40.0,
                                   max_events_per_user=300, time_span_days=60.0, sequence_signal_coef=0.5)


@pytest.fixture(scope="module")
def stream():
    return generate_synthetic_industrial(STREAM, seed=11)


def base_rate_logits(labels: np.ndarray, rows: int) -> torch.Tensor:
    rates = labels.mean(axis=0).astype(np.float64)
    return torch.from_numpy(np.log(rates) - np.log1p(-rates)).expand(rows, -1)


def test_oracle_ne_over_every_event_is_the_fingerprints(stream):
    oracle = oracle_ranking_metrics(stream.oracle_probabilities, stream.labels, stream.task_names)
    recorded = stream.fingerprint["oracle_ne"]
    for task in stream.task_names:
        assert oracle[f"ne/{task}"] == pytest.approx(recorded[task], abs=1e-6)
    assert oracle["ne"] == pytest.approx(np.mean(list(recorded.values())), abs=1e-6)


def test_oracle_beats_the_base_rate_on_a_held_out_slice(stream):
    events = np.arange(stream.num_interactions)[-stream.num_interactions // 5:]  # the latest users' events
    labels = stream.labels[events]
    oracle = oracle_ranking_metrics(stream.oracle_probabilities[events], labels, stream.task_names)
    constant = ranking_metrics(base_rate_logits(labels, len(events)), torch.from_numpy(labels), stream.task_names)
    assert set(oracle) == {key for key in constant if key == "ne" or key.startswith("ne/")}
    assert constant["ne"] == pytest.approx(1.0)
    for key in oracle:
        assert oracle[key] < constant[key] - 0.1, key


def test_same_ne_as_the_models_metric_on_any_probabilities():
    generator = np.random.default_rng(0)
    probabilities = generator.uniform(0.01, 0.99, (500, 2)).astype(np.float32)
    labels = (generator.random((500, 2)) < probabilities).astype(np.float32)
    logits = torch.from_numpy(np.log(probabilities.astype(np.float64)) - np.log1p(-probabilities.astype(np.float64)))
    expected = ranking_metrics(logits, torch.from_numpy(labels), ("a", "b"))
    oracle = oracle_ranking_metrics(probabilities, labels, ("a", "b"))
    for key in ("ne/a", "ne/b", "ne"):
        assert oracle[key] == pytest.approx(expected[key], rel=1e-12)


def test_certain_probabilities_are_clipped_not_infinite():
    probabilities = np.array([[0.0], [1.0], [0.5], [1.0]], dtype=np.float32)
    labels = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)  # the last one is certainly wrong
    ne = oracle_ranking_metrics(probabilities, labels, ("click",))["ne"]
    assert np.isfinite(ne) and ne > 1.0


def test_misshapen_inputs_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        oracle_ranking_metrics(np.full((4, 2), 0.5), np.zeros((4, 3)), ("a", "b"))
    with pytest.raises(ValueError, match="one column per task"):
        oracle_ranking_metrics(np.full((4, 2), 0.5), np.zeros((4, 2)), ("a",))
