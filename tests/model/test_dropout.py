"""model/dropout.py: the CPU mask drops at the rounded rate, in every lane, keeps E[x], and is seeded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.dropout import LANE_VALUES, LANES_PER_DRAW, Dropout, dropout, dropped_lanes


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_drops_at_the_rounded_rate_in_every_lane(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(400_000)
    out = dropout(x, p, training=True)
    rate = dropped_lanes(p) / LANE_VALUES
    assert abs(rate - p) <= 0.5 / LANE_VALUES
    for lane in range(LANES_PER_DRAW):  # every 16-bit lane of a draw is uniform, not only their pooled values
        dropped = (out[lane::LANES_PER_DRAW] == 0).double().mean().item()
        assert dropped == pytest.approx(rate, abs=5 * (rate * (1 - rate) / 100_000) ** 0.5)


def test_kept_values_are_scaled_so_the_mean_is_kept() -> None:
    torch.manual_seed(1)
    x = torch.rand(300_000) + 0.5
    out = dropout(x, 0.3, training=True)
    kept = out != 0
    scale = LANE_VALUES / (LANE_VALUES - dropped_lanes(0.3))
    torch.testing.assert_close(out[kept], x[kept] * scale)
    assert out.mean().item() == pytest.approx(x.mean().item(), rel=5e-3)


def test_is_the_identity_when_not_training_or_p_is_zero() -> None:
    x = torch.randn(10)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x


def test_p_one_and_rates_that_round_to_zero_use_torch_dropout() -> None:
    x = torch.randn(1000)
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros(1000))
    torch.manual_seed(2)
    tiny = dropout(torch.ones(1_000_000), 1e-6, training=True)  # would round to no dropout at all
    torch.manual_seed(2)
    assert torch.equal(tiny, nn.functional.dropout(torch.ones(1_000_000), 1e-6, training=True))


def test_same_seed_same_mask_and_the_gradient_is_the_mask() -> None:
    torch.manual_seed(3)
    first = dropout(torch.ones(5000), 0.2, training=True)
    torch.manual_seed(3)
    x = torch.ones(5000, requires_grad=True)
    second = dropout(x, 0.2, training=True)
    assert torch.equal(first, second)
    second.sum().backward()
    assert torch.equal(x.grad, second.detach())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_keeps_the_input_dtype(dtype: torch.dtype) -> None:
    torch.manual_seed(4)
    out = dropout(torch.ones(1000, dtype=dtype), 0.25, training=True)
    assert out.dtype == dtype
    scale = torch.tensor(LANE_VALUES / (LANE_VALUES - dropped_lanes(0.25)), dtype=dtype).item()
    assert set(out.unique().tolist()) == {0.0, scale}


def test_the_module_is_an_nn_dropout_that_follows_train_and_eval() -> None:
    module = Dropout(0.5)
    assert isinstance(module, nn.Dropout) and module.state_dict() == {}
    x = torch.ones(2000)
    assert (module(x) == 0).any()
    assert module.eval()(x) is x
