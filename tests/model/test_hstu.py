"""HSTU follows Eq. 1-3 and is causal; both encoders are independent of batch neighbours."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from jagged_inputs import sequences_of
from model.config import ModelConfig
from model.embeddings import InputLayer
from model.hstu import HSTULayer
from model.inputs import JaggedSequences, Vocabulary
from model.registry import build_model


def test_layer_matches_equations_1_to_3_written_out():
    torch.manual_seed(0)
    d, heads, dqk, dv, n = 6, 2, 3, 4, 8
    layer = HSTULayer(d, heads, dqk, dv, dropout=0.0, max_seq_len=n, rab="pos").eval()
    sequences = sequences_of([5])
    x = torch.randn(5, d)
    got = layer(x, sequences)

    projected = F.silu(F.linear(F.layer_norm(x, (d,), eps=1e-6), layer.f1.weight, layer.f1.bias))  # Eq. 1
    u, v, q, k = projected.split([heads * dv, heads * dv, heads * dqk, heads * dqk], dim=-1)
    heads_out = []
    for h in range(heads):
        qh, kh, vh = q[:, h * dqk:(h + 1) * dqk], k[:, h * dqk:(h + 1) * dqk], v[:, h * dv:(h + 1) * dv]
        rab = torch.stack([torch.stack([layer.relative_bias.position_weights[j - i + n - 1] for j in range(5)]) for i in range(5)])
        weights = F.silu(qh @ kh.T + rab) / n * torch.tril(torch.ones(5, 5))  # Eq. 2, causal, no softmax
        heads_out.append(weights @ vh)
    attended = torch.cat(heads_out, dim=-1)
    want = x + F.linear(F.layer_norm(attended, (heads * dv,), eps=1e-6) * u, layer.f2.weight, layer.f2.bias)  # Eq. 3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_future_tokens_never_change_earlier_outputs():
    for name in ("hstu", "sasrec"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=name, num_layers=2, num_heads=2, embedding_dim=8, dropout=0.0), "retrieval", Vocabulary(30, 16)).eval()
        sequences = sequences_of([9])
        before = model(sequences)
        changed_ids = sequences.item_ids.clone()
        changed_ids[6:] = (changed_ids[6:] % 30) + 1
        changed_stamps = sequences.timestamps.clone()
        changed_stamps[6:] += 12345
        after = model(JaggedSequences(changed_ids, changed_stamps, sequences.query_timestamps, sequences.offsets))
        torch.testing.assert_close(before[:6], after[:6])
        assert not torch.allclose(before[6:], after[6:])


def test_outputs_do_not_depend_on_batch_neighbours():
    for name in ("hstu", "sasrec"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=name, num_heads=2, embedding_dim=8, dropout=0.0), "retrieval", Vocabulary(30, 16)).eval()
        both = sequences_of([4, 7])
        alone = JaggedSequences(both.item_ids[:4], both.timestamps[:4], both.query_timestamps[:4], both.offsets[:2])
        torch.testing.assert_close(model(both)[:4], model(alone))


def test_rab_switches_remove_the_tables():
    for mode, has_position, has_time in (("pos_time", True, True), ("pos", True, False), ("none", False, False)):
        layer = HSTULayer(8, 1, 8, 8, 0.0, 16, rab=mode)
        assert (layer.relative_bias.position_weights is not None) == has_position
        assert (layer.relative_bias.time_weights is not None) == has_time


def test_gr_ranking_prediction_never_sees_its_own_action_or_the_future():
    """Phi_i's prediction of a_i depends on Phi_0, a_0, ..., Phi_i only (Table 1, target-aware causal)."""
    for name in ("hstu", "sasrec"):
        torch.manual_seed(0)
        vocabulary = Vocabulary(30, 16, num_action_tokens=5, task_names=("like", "share"))
        model = build_model(ModelConfig(name=name, num_heads=2, embedding_dim=8, dropout=0.0), "ranking", vocabulary).eval()
        # Phi_0 a_0 Phi_1 a_1 Phi_2 a_2: item tokens at rows 0, 2, 4
        items = torch.tensor([3, 0, 7, 0, 9, 0])
        actions = torch.tensor([0, 2, 0, 5, 0, 1])
        stamps = torch.tensor([10, 10, 20, 20, 30, 30])
        offsets = torch.tensor([0, 6])
        before = model(JaggedSequences(items, stamps, stamps, offsets, action_ids=actions))
        changed_actions = actions.clone()
        changed_actions[3] = 4  # a_1 changes: the prediction at Phi_1 (row 2) must not
        after = model(JaggedSequences(items, stamps, stamps, offsets, action_ids=changed_actions))
        torch.testing.assert_close(before[:3], after[:3])
        assert not torch.allclose(before[4], after[4])  # Phi_2 does see a_1
        assert before.shape == (6, 2)


def test_initialisation_matches_the_reference_implementation():
    """f1 ~ N(0, 0.02) with a zero bias; f2 Xavier-uniform with PyTorch's default bias; norms at eps 1e-6."""
    torch.manual_seed(0)
    d, heads, dqk, dv = 256, 2, 64, 64
    layer = HSTULayer(d, heads, dqk, dv, dropout=0.0, max_seq_len=64)
    assert layer.input_norm.eps == layer.output_norm.eps == 1e-6
    assert abs(layer.f1.weight.std().item() - 0.02) < 0.001 and not layer.f1.bias.any()
    fan_in, fan_out = layer.f2.in_features, layer.f2.out_features
    xavier_bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert layer.f2.weight.abs().max() <= xavier_bound
    assert abs(layer.f2.weight.std().item() - xavier_bound / math.sqrt(3.0)) < 0.05 * xavier_bound
    bias_bound = 1.0 / math.sqrt(fan_in)
    assert layer.f2.bias.abs().max() <= bias_bound and layer.f2.bias.std() > 0.4 * bias_bound  # kept, not zeroed


def test_position_table_is_xavier_normal_as_in_the_reference():
    torch.manual_seed(0)
    positions = InputLayer(embedding_dim=50, max_seq_len=200, dropout=0.0).positions.weight
    expected = math.sqrt(2.0 / (200 + 50))  # 0.089: ~5x the 0.02 of the item table
    assert abs(positions.std().item() - expected) < 0.05 * expected


def test_the_norm_before_the_gate_acts_as_a_gain_of_one_over_sqrt_eps_at_init():
    """At init the attention output's per-token variance is far below eps, so eps sets the gated branch's scale."""
    torch.manual_seed(0)
    d, n = 50, 200
    layer = HSTULayer(d, 1, d, d, dropout=0.0, max_seq_len=n).eval()
    sequences = sequences_of([n, n // 2], seed=1)
    x = torch.randn(int(sequences.offsets[-1]), d) * math.sqrt(d) * 0.02  # sqrt(d)-scaled embeddings as the input layer
    with torch.no_grad():
        _, v, q, k = layer.split_streams(x)
        attended = layer.attend(q, k, v, sequences)
        variance = attended.var(dim=-1, unbiased=False)
        assert variance.max() < 1e-6  # far below the 1e-5 of PyTorch's default: eps is what the norm divides by
        gain = layer.output_norm(attended).norm(dim=-1) / (attended - attended.mean(-1, keepdim=True)).norm(dim=-1)
    expected = 1.0 / torch.sqrt(variance + 1e-6)
    torch.testing.assert_close(gain, expected, rtol=1e-3, atol=0.0)
    assert (gain / (1.0 / torch.sqrt(variance + 1e-5))).min() > 2.0  # eps 1e-5 would start the branch >2x smaller
