"""DLRM-family baselines: shapes, hand-computed interaction layers, FLOPs formulas, and learning."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from model.baselines.dcnv2 import CrossLayer, MixtureCrossLayer
from model.baselines.dhen import CrossInteraction, DHENLayer, FlatInteraction
from model.baselines.din import DINAttention
from model.baselines.dlrm import DotInteraction
from model.baselines.mlp import MLP
from model.baselines.mmoe import MMoE
from model.catalogue import MODELS
from model.config import DLRMConfig, ModelConfig
from model.flops import ImpressionWorkload, SequenceWorkload
from model.inputs import Vocabulary, FeatureSpec, ImpressionFeatures, JaggedSequences
from model.losses import mixed_negatives_softmax_loss
from model.registry import ModelInputs, build_model
from core.configtools import ConfigError
from scaling.config import load_run_config
from scaling.data.features import DenseStandardizer, ImpressionFeaturizer, impression_labels
from scaling.data.sequences import SequenceDataset

def build_ranking_model(config: ModelConfig, spec):
    return build_model(config, "ranking", ModelInputs(Vocabulary(spec.num_items, 2), features=spec))


def build_retrieval_model(config: ModelConfig, num_items: int, max_seq_len: int, categories=None):
    return build_model(config, "retrieval", ModelInputs(Vocabulary(num_items, max_seq_len), item_categories=categories))


RANKING = [name for name in MODELS if MODELS[name].input == "impressions"]
SPEC = FeatureSpec(
    num_items=40, num_categories=5, num_dense=7, sparse_vocab_sizes=(4, 9), num_action_tokens=3, num_tasks=2, history_len=6
)
SMALL = dict(embedding_dim=8, num_layers=2, num_heads=2, dropout=0.0)  # shared model keys
SMALL_DLRM = dict(hidden_dim=16, num_experts=3)  # model.dlrm keys



def random_features(spec: FeatureSpec, num: int, seed: int = 0, history_len: int | None = None) -> ImpressionFeatures:
    g = torch.Generator().manual_seed(seed)
    k = history_len or spec.history_len
    lengths = torch.randint(0, k + 1, (num, 1), generator=g)
    valid = torch.arange(k).unsqueeze(0) >= k - lengths  # right-aligned history, 0 = padding
    return ImpressionFeatures(
        target_item_ids=torch.randint(1, spec.num_items + 1, (num,), generator=g),
        target_categories=torch.randint(0, spec.num_categories + 1, (num,), generator=g),
        dense=torch.randn(num, spec.num_dense, generator=g),
        sparse=torch.stack([torch.randint(0, size, (num,), generator=g) for size in spec.sparse_vocab_sizes], dim=1),
        history_item_ids=torch.randint(1, spec.num_items + 1, (num, k), generator=g) * valid,
        history_actions=torch.randint(1, spec.num_action_tokens + 1, (num, k), generator=g) * valid,
    )


def variants() -> list[tuple[str, dict]]:
    """Every ranking model under every option that changes its structure (model.dlrm keys)."""
    cases = []
    for name in RANKING:
        for top in ("mlp", "mmoe"):
            for pooling in ("mean", "din"):
                cases.append((name, dict(top=top, sequence_module=pooling)))
    for structure in ("stacked", "parallel"):
        for rank, experts in ((0, 1), (3, 1), (3, 2)):
            cases.append(("dcnv2", dict(cross_structure=structure, low_rank=rank, cross_experts=experts)))
    for module in ("attention", "cross", "linear", "mlp", "dot"):
        cases.append(("dhen", dict(dhen_modules=(module,), low_rank=2 if module == "cross" else 0)))
    cases.append(("dlrm", dict(mlp_layers=0)))
    return cases


def build(name: str, dlrm: dict, spec: FeatureSpec = SPEC, **shared) -> nn.Module:
    """Model ``name`` with the model.dlrm keys ``dlrm`` and the shared model keys ``shared`` over SMALL's."""
    torch.manual_seed(0)
    config = ModelConfig(name=name, **{**SMALL, **shared}, dlrm=DLRMConfig(**{**SMALL_DLRM, **dlrm}))
    return build_ranking_model(config, spec).eval()


@pytest.mark.parametrize("name, options", variants(), ids=lambda v: str(v))
def test_every_variant_maps_impressions_to_task_logits(name, options):
    model = build(name, options)
    features = random_features(SPEC, 5)
    logits = model(features)
    assert logits.shape == (5, SPEC.num_tasks) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.embedding.items.weight.grad.abs().sum() > 0  # the ids reach the logits
    # Any K works, and an impression's logits do not depend on its batch neighbours.
    shorter = random_features(SPEC, 3, seed=1, history_len=2)
    torch.testing.assert_close(model(shorter)[:1], model(ImpressionFeatures(*(getattr(shorter, f)[:1] for f in (
        "target_item_ids", "target_categories", "dense", "sparse", "history_item_ids", "history_actions")))))


def test_features_from_another_dataset_are_rejected():
    model = build("dlrm", {})
    features = random_features(SPEC, 2)
    with pytest.raises(ValueError, match="built for 7; build it from this dataset's feature_spec"):
        model(replace(features, dense=features.dense[:, :3]))


# --- Hand-computed interaction layers -----------------------------------------------------------


def set_linear(layer: nn.Linear, weight: list, bias: list | None = None) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_cross_layer_full_and_low_rank():
    full = CrossLayer(2)
    set_linear(full.project, [[1, 2], [0, 1]], [1, 0])
    x0, x = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]])
    # W x + b = [3 + 2 + 1, 1] = [6, 1]; x0 * that = [6, 2]; + x = [9, 3]
    torch.testing.assert_close(full(x0, x), torch.tensor([[9.0, 3.0]]))
    low = CrossLayer(2, rank=1)
    set_linear(low.project[0], [[1, 1]])  # V^T x = 4
    set_linear(low.project[1], [[1], [-1]], [0, 1])  # U (V^T x) + b = [4, -3]
    torch.testing.assert_close(low(x0, x), torch.tensor([[1 * 4 + 3, 2 * -3 + 1.0]]))


def test_mixture_cross_layer_gates_its_low_rank_experts():
    layer = MixtureCrossLayer(dim=2, rank=1, num_experts=2)
    with torch.no_grad():
        layer.down.copy_(torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]]]))  # V_1^T x = x_1, V_2^T x = x_2
        layer.middle.copy_(torch.tensor([[[2.0]], [[1.0]]]))
        layer.up.copy_(torch.tensor([[[1.0, 1.0]], [[1.0, -1.0]]]))
        layer.bias.zero_()
        layer.gate.weight.copy_(torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]))  # logits [0, ln3 * x_1]
    x0, x = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 3.0]])
    expert_1 = x0 * torch.tensor([2.0, 2.0])  # U_1 relu(2 relu(1)) = [2, 2]
    expert_2 = x0 * torch.tensor([3.0, -3.0])  # U_2 relu(1 relu(3)) = [3, -3]
    gates = torch.tensor([0.25, 0.75])  # softmax([0, ln 3])
    torch.testing.assert_close(layer(x0, x), gates[0] * expert_1 + gates[1] * expert_2 + x)


def test_dot_interaction_keeps_the_upper_triangle():
    vectors = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])
    assert DotInteraction(3)(vectors).tolist() == [[0.0, 1.0, 2.0]]  # (0,1), (0,2), (1,2)


def test_dhen_layer_is_layernorm_of_the_ensemble_plus_shortcut():
    num_vectors, dim = 2, 2
    doubling = FlatInteraction(MLP([4, 4]))
    set_linear(doubling.network.layers[0], (2 * torch.eye(4)).tolist(), [0.0] * 4)
    square = CrossInteraction(4, rank=0)  # x * (I x + 0) = x^2
    set_linear(square.project, torch.eye(4).tolist(), [0.0] * 4)
    layer = DHENLayer([doubling, square], dim)
    set_linear(layer.ensemble, [[1, 0, 1, 0], [0, 1, 0, 1]], [0, 0])  # per vector: module 1 + module 2
    x = torch.tensor([[[1.0, -2.0], [0.5, 3.0]]])
    want = F.layer_norm(2 * x + x * x + x, (dim,))
    torch.testing.assert_close(layer(x), want)
    assert layer(x).shape == (1, num_vectors, dim)


def test_mmoe_mixes_experts_with_per_task_softmax_gates():
    mmoe = MMoE(in_dim=1, num_tasks=2, num_experts=2, expert_hidden=(1,), tower_hidden=1)
    set_linear(mmoe.experts[0].layers[0], [[1.0]], [0.0])  # expert 1: relu(x)
    set_linear(mmoe.experts[1].layers[0], [[2.0]], [1.0])  # expert 2: relu(2x + 1)
    set_linear(mmoe.gates, [[0.0], [0.0], [math.log(3.0)], [0.0]], [0, 0, 0, 0])  # task 1: equal; task 2: 3:1 at x=1
    for tower in mmoe.towers:  # identity towers (relu of a positive input)
        set_linear(tower.layers[0], [[1.0]], [0.0])
        set_linear(tower.layers[2], [[1.0]], [0.0])
    x = torch.tensor([[1.0]])
    torch.testing.assert_close(mmoe.gate_weights(x), torch.tensor([[[0.5, 0.5], [0.75, 0.25]]]))
    torch.testing.assert_close(mmoe(x), torch.tensor([[0.5 * 1 + 0.5 * 3, 0.75 * 1 + 0.25 * 3]]))


def test_din_weights_are_the_activation_unit_without_softmax():
    attention = DINAttention(2, hidden_dims=(1,))
    first, _, last = attention.unit.layers  # Linear(8 -> 1), PReLU, Linear(1 -> 1)
    set_linear(first, [[0, 0, 0, 0, 0, 0, 1, 1]], [0.0])  # reads the h * t block: a = h . t
    set_linear(last, [[1.0]], [0.0])
    history = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [5.0, 5.0]]])
    target = torch.tensor([[1.0, 1.0]])
    mask = torch.tensor([[True, True, False]])  # the last item is padding
    # h . t = 3, 3 (PReLU keeps positives); padding weighs 0; the weights sum to 6, not 1.
    torch.testing.assert_close(attention.weights(history, mask, target), torch.tensor([[3.0, 3.0, 0.0]]))
    torch.testing.assert_close(attention(history, mask, target), torch.tensor([[12.0, 6.0]]))


# --- FLOPs -------------------------------------------------------------------------------------


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("name, options", variants(), ids=lambda v: str(v))
@pytest.mark.parametrize("num, history_len, width", [(3, 4, 8), (17, 10, 16)])
def test_forward_flops_match_the_flop_counter(name, options, num, history_len, width):
    """FlopCounterMode counts matmul-like aten ops (mm, addmm, bmm, baddbmm, ...) and nothing else,
    the convention of model.flops; the formulas must agree within 5% (they are exact here)."""
    model = build(name, {**options, "hidden_dim": 2 * width}, embedding_dim=width)
    features = random_features(SPEC, num, history_len=history_len)
    counted = counted_flops(lambda: model(features))
    assert model.forward_flops(ImpressionWorkload(num, history_len)) == pytest.approx(counted, rel=0.05)


@pytest.mark.parametrize("num_layers, with_categories", [(1, False), (3, True)])
def test_two_tower_flops_match_the_flop_counter(num_layers, with_categories):
    categories = torch.randint(0, 4, (31,)) if with_categories else None
    torch.manual_seed(0)
    config = ModelConfig(name="two_tower", num_layers=num_layers, embedding_dim=8, dlrm=DLRMConfig(hidden_dim=12))
    model = build_retrieval_model(config, 30, 20, categories)
    sequences = jagged([5, 3, 7], 30)
    scored, compared = 4, 6
    ids = torch.randint(1, 31, (scored, compared))

    def forward() -> None:
        queries = model(sequences)[:scored]
        torch.einsum("nd,nrd->nr", queries, model.item_vectors(ids))

    workload = SequenceWorkload(3, 15, 15 + 6 + 28, scored, compared)  # causal pairs n (n + 1) / 2 (unused here)
    assert model.forward_flops(workload) == pytest.approx(counted_flops(forward), rel=0.05)


# --- Two tower ----------------------------------------------------------------------------------


def jagged(lengths: list[int], num_items: int, seed: int = 0) -> JaggedSequences:
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    offsets = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int64)
    stamps = torch.cumsum(torch.randint(1, 100, (total,), generator=g), 0)
    return JaggedSequences(torch.randint(1, num_items + 1, (total,), generator=g), stamps, stamps + 1, offsets)


def test_two_tower_is_causal_per_sequence_and_has_the_retrieval_interface():
    torch.manual_seed(0)
    config = ModelConfig(name="two_tower", embedding_dim=8, dropout=0.0, dlrm=DLRMConfig(hidden_dim=16))
    model = build_retrieval_model(config, 30, 20).eval()
    both = jagged([4, 6], 30)
    out = model(both)
    assert out.shape == (10, 8) and torch.allclose(out.norm(dim=-1), torch.ones(10))
    changed = both.item_ids.clone()
    changed[7:] = changed[7:] % 30 + 1  # the second sequence's last three tokens
    after = model(replace(both, item_ids=changed))
    torch.testing.assert_close(out[:7], after[:7])
    assert not torch.allclose(out[7:], after[7:])
    alone = JaggedSequences(both.item_ids[:4], both.timestamps[:4], both.query_timestamps[:4], both.offsets[:2])
    torch.testing.assert_close(model(alone), out[:4])
    catalogue = model.catalogue_vectors()
    assert catalogue.shape == (31, 8) and catalogue[0].abs().sum() == 0
    torch.testing.assert_close(catalogue[5], model.item_vectors(torch.tensor(5)))
    assert model.num_items == 30


def test_two_tower_trains_with_the_existing_retrieval_objective():
    from scaling.data.batching import SequenceBatcher
    from scaling.data.splits import leave_one_out_events
    from scaling.data.tokens import build_token_stream
    from scaling.objectives import RetrievalObjective

    rng = np.random.default_rng(0)
    dataset = SequenceDataset(rng.integers(1, 21, 60), np.arange(60), np.arange(0, 61, 6), 20)
    batcher = SequenceBatcher(dataset, build_token_stream(dataset, "retrieval"), max_seq_len=8)
    split = leave_one_out_events(dataset, batcher.supervisable())
    torch.manual_seed(0)
    model = build_retrieval_model(ModelConfig(name="two_tower", embedding_dim=8, dlrm=DLRMConfig(hidden_dim=16)), 20, 8)
    objective = RetrievalObjective(5, 0.1, batcher, exclude_history=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = next(batcher.batches(batcher.chunks(split.train), 10, "shuffle", rng))
    loss = objective.loss(model, batch, objective.sample_negatives(model, batch, torch.Generator().manual_seed(0)))
    loss.backward()
    optimizer.step()
    assert math.isfinite(loss.item())
    metrics = objective.evaluate(model, batcher.batches(batcher.chunks(split.valid), 4, "time"), torch.device("cpu"))
    assert 0 <= metrics["hr@10"] <= 1


def test_two_tower_loss_runs_the_item_tower_once_per_distinct_item_and_equals_the_per_pair_loss():
    """The objective computes each distinct item's vector once and looks comparisons up by row: the
    same loss and gradients (to float rounding) as running the item tower on every (target, candidate)."""
    from model.losses import sampled_softmax_loss
    from scaling.data.batching import SequenceBatcher
    from scaling.data.splits import leave_one_out_events
    from scaling.data.tokens import build_token_stream
    from scaling.flops import training_workload
    from scaling.objectives import RetrievalObjective

    rng = np.random.default_rng(0)
    dataset = SequenceDataset(rng.integers(1, 21, 60), np.arange(60), np.arange(0, 61, 6), 20)
    batcher = SequenceBatcher(dataset, build_token_stream(dataset, "retrieval"), max_seq_len=8)
    split = leave_one_out_events(dataset, batcher.supervisable())
    torch.manual_seed(0)
    config = ModelConfig(name="two_tower", embedding_dim=8, dropout=0.0, dlrm=DLRMConfig(hidden_dim=16))
    model = build_retrieval_model(config, 20, 8)
    objective = RetrievalObjective(5, 0.1, batcher, exclude_history=True)
    batch = next(batcher.batches(batcher.chunks(split.train), 10, "shuffle", rng))
    negatives = objective.sample_negatives(model, batch, torch.Generator().manual_seed(0))
    tower_rows = []
    hook = model.item_tower.register_forward_hook(lambda module, inputs, output: tower_rows.append(inputs[0].shape[0]))
    loss = objective.loss(model, batch, negatives)
    hook.remove()
    distinct = torch.unique(torch.cat([batch.target_item_ids.unsqueeze(1), negatives], 1)).numel()
    assert tower_rows == [distinct] and distinct < negatives.numel()
    workload = training_workload(batch, load_run_config(None, ["train.num_negatives=5"]), negatives)
    assert workload.num_distinct_items == distinct and workload.item_vectors_computed == distinct

    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    queries = model(batch.sequences)[batch.supervised_rows]
    targets = batch.target_item_ids
    per_pair = sampled_softmax_loss(queries, model.item_vectors(targets), model.item_vectors(negatives), targets, negatives, 0.1)
    torch.testing.assert_close(loss, per_pair)
    for grad, want in zip(grads, torch.autograd.grad(per_pair, list(model.parameters()), allow_unused=True)):
        if want is not None:
            torch.testing.assert_close(grad, want)


# --- Loss ---------------------------------------------------------------------------------------


def test_mixed_negatives_loss_masks_accidental_hits_and_applies_log_q():
    g = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(4, 3, generator=g), dim=-1)
    positive = F.normalize(torch.randn(4, 3, generator=g), dim=-1)
    ids = torch.tensor([1, 2, 2, 3])  # rows 1 and 2 share a positive: not each other's negative
    logits = query @ positive.T / 0.5
    logits[1, 2] = logits[2, 1] = float("-inf")
    want = F.cross_entropy(logits, torch.arange(4))
    torch.testing.assert_close(mixed_negatives_softmax_loss(query, positive, ids, 0.5), want)

    negatives = F.normalize(torch.randn(4, 2, 3, generator=g), dim=-1)
    negative_ids = torch.tensor([[4, 1], [5, 6], [7, 4], [3, 8]])  # rows 0 and 3 drew their own positive
    plain = mixed_negatives_softmax_loss(query, positive, ids, 0.5, negatives, negative_ids)
    sampled = torch.einsum("nd,nrd->nr", query, negatives) / 0.5
    sampled[0, 1] = sampled[3, 0] = float("-inf")
    torch.testing.assert_close(plain, F.cross_entropy(torch.cat([logits, sampled], 1), torch.arange(4)))
    # Uniform frequencies shift every logit equally: logQ changes nothing. Skewed ones do.
    uniform = torch.full((9,), 1 / 8)
    torch.testing.assert_close(mixed_negatives_softmax_loss(query, positive, ids, 0.5, negatives, negative_ids, uniform), plain)
    skewed = torch.tensor([0.0, 0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03])
    assert not torch.isclose(mixed_negatives_softmax_loss(query, positive, ids, 0.5, negatives, negative_ids, skewed), plain)
    # In-batch negatives from a subset of rows: row 3's positive is the only shared candidate.
    subset = mixed_negatives_softmax_loss(query, positive, ids, 0.5, in_batch_rows=torch.tensor([3]))
    pairs = torch.stack([(query * positive).sum(-1), query @ positive[3]], dim=1) / 0.5
    pairs[3, 1] = float("-inf")
    torch.testing.assert_close(subset, F.cross_entropy(pairs, torch.zeros(4, dtype=torch.int64)))


# --- Registry and config ------------------------------------------------------------------------


def test_registry_routes_each_task_to_its_builder():
    with pytest.raises(ValueError, match="cannot be trained on data.task 'retrieval'; it supports ranking"):
        build_model(ModelConfig(name="dlrm"), "retrieval", Vocabulary(10, 5))
    with pytest.raises(ValueError, match="cannot be trained on data.task 'ranking'; it supports retrieval"):
        build_model(ModelConfig(name="two_tower"), "ranking", ModelInputs(Vocabulary(10, 5), features=SPEC))
    with pytest.raises(ValueError, match="reads impression features; none were given"):
        build_model(ModelConfig(name="dlrm"), "ranking", Vocabulary(10, 5))
    assert {MODELS[name].family for name in (*RANKING, "two_tower")} == {"DLRM"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.name=dcnv2", "model.dlrm.cross_experts=4"],
         "config key 'model.dlrm.cross_experts': is 4, but DCN-Mix experts are low-rank; set model.dlrm.low_rank >= 1"),
        (["model.name=mmoe", "model.dlrm.mlp_layers=0"], "config key 'model.dlrm.mlp_layers': must be >= 1 with an MMoE top"),
        (["model.name=din", "model.dlrm.top=mmoe", "model.dlrm.mlp_layers=0"],
         "config key 'model.dlrm.mlp_layers': must be >= 1 with an MMoE top"),
        (["model.name=dcnv2", "model.dlrm.cross_structure=parallel", "model.dlrm.mlp_layers=0"],
         "config key 'model.dlrm.mlp_layers': must be >= 1 for the parallel DCN-v2"),
        (["model.name=dhen", "model.dlrm.dhen_modules=[dot, dot]"], "config key 'model.dlrm.dhen_modules': lists a module twice"),
        (["model.name=dlrm", "model.dlrm.history_len=0"], "config key 'model.dlrm.history_len': must be >= 1"),
    ],
)
def test_bad_size_knobs_are_rejected_with_a_fix(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(None, ["data.task=ranking", *overrides])
    assert str(error.value).startswith(message)


def test_mlp_top_without_hidden_layers_is_allowed():
    """The MMoE-top check is about MMoE tops only: a DLRM with an MLP top may have a linear top."""
    assert load_run_config(None, ["data.task=ranking", "model.name=dlrm", "model.dlrm.mlp_layers=0"]).model.dlrm.mlp_layers == 0


# --- Learning -----------------------------------------------------------------------------------


def propensity_dataset(num_users: int, events_per_user: int, seed: int) -> SequenceDataset:
    """Each user clicks with a fixed propensity p_u ~ Beta(0.4, 0.4); 'like' = click and a coin flip.

    Only the user's past (their click rate) predicts the label: items are uniform noise.
    """
    rng = np.random.default_rng(seed)
    events = num_users * events_per_user
    propensity = np.repeat(rng.beta(0.4, 0.4, num_users), events_per_user)
    click = rng.random(events) < propensity
    like = click & (rng.random(events) < 0.5)
    return SequenceDataset(
        item_ids=rng.integers(1, 51, events),
        timestamps=np.sort(rng.integers(0, 30 * 86_400, (num_users, events_per_user)), axis=1).reshape(-1),
        offsets=np.arange(0, events + 1, events_per_user),
        num_items=50,
        action_tokens=1 + click + like,
        num_action_tokens=3,
        labels=np.stack([click, like], axis=1).astype(np.float32),
        task_names=("click", "like"),
        item_categories=np.concatenate([[0], rng.integers(1, 6, 50)]),
        num_categories=5,
    )


@pytest.fixture(scope="module")
def propensity_task():
    dataset = propensity_dataset(num_users=500, events_per_user=24, seed=0)
    featurizer = ImpressionFeaturizer(dataset, history_len=8)
    positions = np.arange(dataset.num_interactions) % 24
    train = np.flatnonzero((positions >= 4) & (np.arange(dataset.num_interactions) < 400 * 24))
    test = np.flatnonzero((positions >= 4) & (np.arange(dataset.num_interactions) >= 400 * 24))  # unseen users
    standardize = DenseStandardizer.fit(featurizer(train).dense)
    return (featurizer.spec, standardize(featurizer(train)), impression_labels(dataset, train),
            standardize(featurizer(test)), impression_labels(dataset, test))


@pytest.mark.parametrize("name", RANKING)
def test_each_dlrm_learns_the_users_past_rate(name, propensity_task):
    spec, train, train_labels, test, test_labels = propensity_task
    model = build(name, dict(hidden_dim=32, mlp_layers=1), spec, embedding_dim=8, num_layers=1).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        rows = torch.randint(0, train.num_impressions, (256,), generator=generator)
        batch = ImpressionFeatures(*(getattr(train, f)[rows] for f in (
            "target_item_ids", "target_categories", "dense", "sparse", "history_item_ids", "history_actions")))
        loss = F.binary_cross_entropy_with_logits(model(batch), train_labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        model_loss = F.binary_cross_entropy_with_logits(model(test), test_labels).item()
    base_rate = train_labels.mean(0).expand_as(test_labels)
    constant_loss = F.binary_cross_entropy(base_rate, test_labels).item()
    assert model_loss < 0.75 * constant_loss, f"{name}: {model_loss:.4f} vs constant {constant_loss:.4f}"
