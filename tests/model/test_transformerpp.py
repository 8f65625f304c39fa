"""Transformer++: RoPE is relative, the layer is LLaMA's block, causal, batch-independent, learns, and its FLOPs add up."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from kernels.flops import attention_flops
from model.config import ModelConfig, TransformerConfig
from model.flops import SequenceWorkload
from model.inputs import JaggedSequences, Vocabulary
from jagged_inputs import sequences_of
from model.registry import build_model
from model.transformerpp import TransformerPPLayer, apply_rotary, swiglu_hidden_dim
from scaling.config import load_run_config
from core.configtools import ConfigError


def transformerpp(num_items: int = 30, max_seq_len: int = 16, **overrides) -> torch.nn.Module:
    settings = dict(name="transformerpp", num_layers=2, num_heads=2, embedding_dim=16, dropout=0.0) | overrides
    return build_model(ModelConfig(**settings), "retrieval", Vocabulary(num_items, max_seq_len)).eval()


def test_rope_rotates_each_pair_by_position_times_its_frequency():
    x = torch.tensor([[[1.0, 0.0, 0.0, 2.0]]])  # [T=1, H=1, D=4]: pairs (1, 0) and (0, 2)
    got = apply_rotary(x, torch.tensor([3]), base=100.0)
    # Pair 0 turns by 3 * 100^0 = 3 rad; pair 1 by 3 * 100^(-2/4) = 0.3 rad.
    want = torch.tensor([[[math.cos(3.0), math.sin(3.0), -2 * math.sin(0.3), 2 * math.cos(0.3)]]])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(apply_rotary(x, torch.tensor([0])), x)


def test_rope_scores_depend_only_on_position_differences():
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 3, 8, generator=generator), torch.randn(1, 3, 8, generator=generator)

    def score(query_position: int, key_position: int) -> torch.Tensor:
        rotated_q = apply_rotary(q, torch.tensor([query_position]))
        rotated_k = apply_rotary(k, torch.tensor([key_position]))
        return (rotated_q * rotated_k).sum(-1)  # [1, H]

    torch.testing.assert_close(score(5, 2), score(105, 102), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(score(7, 7), score(0, 0), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)
    torch.testing.assert_close(apply_rotary(q, torch.tensor([41])).norm(dim=-1), q.norm(dim=-1))


def reference_layer(layer: TransformerPPLayer, x: torch.Tensor) -> torch.Tensor:
    """LLaMA's block written out for one sequence, with RoPE as complex multiplication (Su et al. Eq. 34)."""
    tokens, heads, dqk, dv = x.shape[0], layer.num_heads, layer.qk_dim, layer.v_dim
    normed = F.rms_norm(x, (x.shape[1],), layer.attention_norm.weight, eps=layer.attention_norm.eps)
    position = torch.arange(tokens, dtype=torch.float32)
    frequency = 10_000.0 ** (-torch.arange(0, dqk, 2, dtype=torch.float32) / dqk)
    rotation = torch.polar(torch.ones(tokens, dqk // 2), position[:, None] * frequency[None, :])  # [T, dqk/2]

    def rope(t: torch.Tensor) -> torch.Tensor:
        pairs = torch.view_as_complex(t.reshape(tokens, heads, dqk // 2, 2).contiguous())
        return torch.view_as_real(pairs * rotation[:, None, :]).reshape(tokens, heads, dqk)

    q = rope((normed @ layer.query.weight.T).reshape(tokens, heads, dqk))
    k = rope((normed @ layer.key.weight.T).reshape(tokens, heads, dqk))
    v = (normed @ layer.value.weight.T).reshape(tokens, heads, dv)
    scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(dqk)
    causal = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    attended = torch.einsum("hij,jhd->ihd", weights, v).reshape(tokens, heads * dv)
    h = x + attended @ layer.output.weight.T
    normed = F.rms_norm(h, (h.shape[1],), layer.ffn_norm.weight, eps=layer.ffn_norm.eps)
    return h + (F.silu(normed @ layer.gate.weight.T) * (normed @ layer.up.weight.T)) @ layer.down.weight.T


def test_layer_is_the_llama_block_written_out():
    torch.manual_seed(0)
    layer = TransformerPPLayer(12, num_heads=2, qk_dim=6, v_dim=5, ffn_dim=20, dropout=0.0, max_seq_len=16).eval()
    with torch.no_grad():  # non-trivial norm gains, so the test sees where they apply
        layer.attention_norm.weight.uniform_(0.5, 1.5)
        layer.ffn_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(7, 12)
    torch.testing.assert_close(layer(x, sequences_of([7])), reference_layer(layer, x), rtol=1e-4, atol=1e-5)


def test_future_tokens_never_change_earlier_outputs():
    torch.manual_seed(0)
    model = transformerpp()
    sequences = sequences_of([9])
    before = model(sequences)
    changed = sequences.item_ids.clone()
    changed[6:] = (changed[6:] % 30) + 1
    after = model(JaggedSequences(changed, sequences.timestamps, sequences.query_timestamps, sequences.offsets))
    torch.testing.assert_close(before[:6], after[:6])
    assert not torch.allclose(before[6:], after[6:])


def test_outputs_do_not_depend_on_batch_neighbours():
    torch.manual_seed(0)
    model = transformerpp()
    both = sequences_of([4, 7])
    first = JaggedSequences(both.item_ids[:4], both.timestamps[:4], both.query_timestamps[:4], torch.tensor([0, 4]))
    second = JaggedSequences(both.item_ids[4:], both.timestamps[4:], both.query_timestamps[4:], torch.tensor([0, 7]))
    together = model(both)
    torch.testing.assert_close(together[:4], model(first), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together[4:], model(second), rtol=1e-5, atol=1e-6)


def test_each_ranking_target_is_scored_as_if_alone():
    torch.manual_seed(0)
    model = transformerpp()
    batch = sequences_of([8], num_targets=[3])  # 5 history tokens, then 3 candidates
    together = model(batch)
    for target in range(5, 8):
        keep = list(range(5)) + [target]
        alone = JaggedSequences(
            batch.item_ids[keep], batch.timestamps[keep], batch.query_timestamps[keep], torch.tensor([0, 6]),
            num_targets=torch.tensor([1]),
        )
        torch.testing.assert_close(together[target], model(alone)[5], rtol=1e-5, atol=1e-6)


def test_positions_come_only_from_rope_and_swiglu_width_defaults_to_8_thirds_d():
    model = transformerpp(embedding_dim=48)
    assert model.backbone.input_layer.positions is None
    assert not any(isinstance(m, torch.nn.Embedding) for m in model.backbone.encoder.modules())
    assert swiglu_hidden_dim(48) == 128 and swiglu_hidden_dim(50) == 136
    assert model.backbone.encoder.layers[0].gate.out_features == 128
    assert transformerpp(transformer=TransformerConfig(ffn_dim=40)).backbone.encoder.layers[0].gate.out_features == 40
    assert isinstance(model.backbone.encoder.final_norm, torch.nn.RMSNorm)


def test_odd_per_head_query_width_is_a_config_error():
    with pytest.raises(ConfigError, match="config key 'model.qk_dim': must be even for transformerpp"):
        load_run_config(None, ["model.name=transformerpp", "model.embedding_dim=50", "model.num_heads=2"])



def periodic_batch(num_sequences: int, length: int, num_items: int, generator: torch.Generator) -> torch.Tensor:
    """[B, L] items 1..num_items repeating a random triple a, b, c, a, b, c, ...: next = the token two back."""
    triples = torch.stack([torch.randperm(num_items, generator=generator)[:3] + 1 for _ in range(num_sequences)])
    return triples.repeat(1, length // 3 + 1)[:, :length]


def stride_batch(num_sequences: int, length: int, num_items: int, generator: torch.Generator) -> torch.Tensor:
    """[B, L] items following i -> i + 3 (mod num_items) from a random start."""
    start = torch.randint(0, num_items, (num_sequences, 1), generator=generator)
    return (start + 3 * torch.arange(length)) % num_items + 1


@pytest.mark.parametrize(
    "make_batch, steps",
    [(stride_batch, 60), (periodic_batch, 160)],  # the second rule needs RoPE: a bag of the prefix is ambiguous
    ids=["i_to_i_plus_3", "repeat_two_back"],
)
def test_learns_a_deterministic_next_item_rule(make_batch, steps, one_thread):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    num_items, length, temperature = 40, 12, 0.05
    model = transformerpp(num_items=num_items, embedding_dim=32, num_heads=2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def batch(items: torch.Tensor) -> JaggedSequences:
        inputs = items[:, :-1].reshape(-1)
        offsets = torch.arange(items.shape[0] + 1) * (length - 1)
        stamps = torch.arange(inputs.numel())
        return JaggedSequences(inputs, stamps, stamps + 1, offsets)

    for _ in range(steps):
        items = make_batch(32, length, num_items, generator)
        logits = model(batch(items)) @ model.catalogue_vectors().T / temperature  # [T, N + 1]
        loss = F.cross_entropy(logits, items[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    items = make_batch(200, length, num_items, generator)
    with torch.no_grad():
        predicted = (model(batch(items)) @ model.catalogue_vectors().T).argmax(-1).reshape(200, length - 1)
    # From the third position on, the rule determines the next item (the triple is then known).
    hit_rate = (predicted[:, 2:] == items[:, 3:]).float().mean().item()
    assert hit_rate > 0.9, f"HR@1 {hit_rate:.3f}"


def test_forward_flops_match_the_flop_counter():
    torch.manual_seed(0)
    model = transformerpp(embedding_dim=16, num_heads=2, num_layers=2)
    lengths, items_per_scored = [5, 9, 3], 11
    sequences = sequences_of(lengths)
    tokens = sum(lengths)
    workload = SequenceWorkload(
        num_sequences=len(lengths), num_tokens=tokens, attention_pairs=sum(n * (n + 1) // 2 for n in lengths),
        num_scored=tokens, items_per_scored=items_per_scored,
    )
    candidates = torch.randint(1, 31, (tokens, items_per_scored))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        scores = torch.einsum("nd,nrd->nr", model(sequences), model.item_vectors(candidates))  # noqa: F841
    layer = model.backbone.encoder.layers[0]
    heads, dqk, dv, layers = layer.num_heads, layer.qk_dim, layer.v_dim, len(model.backbone.encoder.layers)
    # The counter counts the reference attention op by the pairs its causal mask allows,
    # n (n + 1) / 2 per sequence (kernels/flops.py), the count forward_flops uses too.
    assert counter.get_total_flops() == pytest.approx(model.forward_flops(workload), rel=1e-9)
    # Matmuls dominate: attention is a visible but minor share at these shapes.
    causal = attention_flops(workload.attention_pairs, heads, dqk, dv)
    assert model.forward_flops(workload) > 2.0 * layers * causal
