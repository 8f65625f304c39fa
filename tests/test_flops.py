"""Analytic FLOPs agree with torch.utils.flop_counter.FlopCounterMode on real training steps.

Each case builds a model, runs one full training step (forward, loss, backward, optimizer)
under the counter, and compares with the analytic 3 x forward_flops(workload). To add a model
(a DLRM baseline, transformerpp), append a :class:`FlopsCase` to ``CASES``: how to build it,
one training step, and the workload that step ran.

Tolerance: 1%. The analytic count and the counter differ by design in two small terms: the
analytic causal attention counts n^2 / 2 pairs per sequence where the mask allows
n (n + 1) / 2, and the positive logit of the sampled softmax is a dot product computed
elementwise (mul + sum), which the counter does not see while the analytic count includes it.
A missing or double-counted matmul (a projection, a layer, the backward) is off by far more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from model.config import ModelConfig
from model.registry import build_model
from scaling.data.batching import LeaveOneOutSplit
from scaling.data.sequences import SequenceDataset
from scaling.evaluation import evaluate_retrieval
from scaling.flops import FLOPS_PER_PF_DAY, evaluation_workload, pf_days, training_step_flops, training_workload
from scaling.train import train_step

TOLERANCE = 0.01


@dataclass(frozen=True)
class FlopsCase:
    id: str
    build: Callable[[], nn.Module]
    # runs one training step of the model and returns the analytic FLOPs of that step
    step: Callable[[nn.Module], float]


def synthetic_split(num_users: int, num_items: int, max_len: int, max_seq_len: int, seed: int = 0) -> LeaveOneOutSplit:
    """Random histories of 3..max_len items: a real leave-one-out split to draw batches from."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, max_len + 1, size=num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, num_items + 1, size=int(offsets[-1]))
    stamps = np.concatenate([np.sort(rng.integers(0, 10**7, size=n)) for n in lengths])
    return LeaveOneOutSplit(SequenceDataset(items, stamps, offsets, num_items=num_items), max_seq_len)


def retrieval_case(case_id: str, model: ModelConfig, max_seq_len: int, num_negatives: int, batch_size: int = 16) -> FlopsCase:
    num_items = 500
    split = synthetic_split(batch_size, num_items, max_len=max_seq_len + 3, max_seq_len=max_seq_len)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_model(model, num_items, max_seq_len)

    def step(network: nn.Module) -> float:
        batch = next(split.training_batches(batch_size, np.random.default_rng(0)))
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
        train_step(network, optimizer, batch, num_negatives, 0.05, torch.Generator().manual_seed(0))
        return training_step_flops(network, training_workload(batch, num_negatives))

    return FlopsCase(case_id, build, step)


CASES = [
    retrieval_case("hstu-2x32", ModelConfig(name="hstu", num_layers=2, num_heads=1, embedding_dim=32), 50, 128),
    retrieval_case("hstu-4x64", ModelConfig(name="hstu", num_layers=4, num_heads=2, embedding_dim=64), 100, 64),
    retrieval_case("hstu-3x96-qk16", ModelConfig(name="hstu", num_layers=3, num_heads=4, embedding_dim=96, qk_dim=16, v_dim=32), 200, 32),
    retrieval_case("sasrec-2x32", ModelConfig(name="sasrec", num_layers=2, num_heads=1, embedding_dim=32), 50, 128),
    retrieval_case("sasrec-4x64", ModelConfig(name="sasrec", num_layers=4, num_heads=2, embedding_dim=64, ffn_dim=256), 100, 64),
    retrieval_case("sasrec-3x96", ModelConfig(name="sasrec", num_layers=3, num_heads=4, embedding_dim=96), 200, 32),
]


def counted_training_step(case: FlopsCase) -> tuple[float, float]:
    """(analytic, counted) FLOPs of one training step of ``case``."""
    model = case.build()
    with FlopCounterMode(display=False) as counter:
        analytic = case.step(model)
    return analytic, float(counter.get_total_flops())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_analytic_training_flops_match_the_counter(case: FlopsCase):
    analytic, counted = counted_training_step(case)
    assert counted > 0
    assert analytic / counted == pytest.approx(1.0, abs=TOLERANCE), f"analytic {analytic:.4g} vs counted {counted:.4g}"


@pytest.mark.parametrize("name", ["hstu", "sasrec"])
def test_evaluation_workload_matches_the_counter(name: str):
    split = synthetic_split(40, 300, max_len=60, max_seq_len=50)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, num_layers=2, num_heads=2, embedding_dim=32), 300, 50)
    with FlopCounterMode(display=False) as counter:
        evaluate_retrieval(model, split, "valid", 16, torch.device("cpu"))
    analytic = sum(model.forward_flops(evaluation_workload(b, 300)) for b in split.evaluation_batches("valid", 16))
    assert analytic / counter.get_total_flops() == pytest.approx(1.0, abs=TOLERANCE)


def test_training_flops_scale_with_layers_and_are_three_times_forward():
    split = synthetic_split(8, 100, max_len=30, max_seq_len=30)
    batch = split.training_batch(np.arange(8))
    workload = training_workload(batch, 16)
    lengths = (batch.sequences.offsets[1:] - batch.sequences.offsets[:-1]).tolist()
    assert (workload.num_tokens, workload.sum_squared_lengths) == (sum(lengths), sum(n * n for n in lengths))
    assert (workload.num_scored, workload.items_per_scored) == (batch.target_ids.numel(), 17)
    one, two = (build_model(ModelConfig(name="hstu", num_layers=n, embedding_dim=32), 100, 30) for n in (1, 2))
    scoring = 2 * workload.num_scored * 32 * 17
    assert training_step_flops(one, workload) == pytest.approx(3 * one.forward_flops(workload))
    assert two.forward_flops(workload) - scoring == pytest.approx(2 * (one.forward_flops(workload) - scoring))


def test_pf_days():
    assert FLOPS_PER_PF_DAY == 8.64e19
    assert pf_days(8.64e19) == pytest.approx(1.0)
