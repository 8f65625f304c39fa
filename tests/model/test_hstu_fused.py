"""The fused Eq. 1 and Eq. 3 (model/hstu_fused.py) train exactly like the unfused layer: outputs and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jagged_inputs import sequences_of
from model.hstu import HSTULayer


def unfused_forward(layer: HSTULayer, x: torch.Tensor, sequences) -> torch.Tensor:
    """The layer as plain autograd sees it: every intermediate kept for backward."""
    hv, hqk = layer.num_heads * layer.v_dim, layer.num_heads * layer.qk_dim
    u, v, q, k = torch.split(F.silu(layer.f1(layer.input_norm(x))), [hv, hv, hqk, hqk], dim=-1)
    tokens = x.shape[0]
    attended = layer.attend(q.reshape(tokens, layer.num_heads, layer.qk_dim),
                            k.reshape(tokens, layer.num_heads, layer.qk_dim),
                            v.reshape(tokens, layer.num_heads, layer.v_dim), sequences)
    return x + layer.f2(layer.dropout(layer.output_norm(attended) * u))


def outputs_and_grads(layer: HSTULayer, forward, x: torch.Tensor, sequences, autocast: bool, seed: int):
    layer.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    torch.manual_seed(seed)  # the dropout masks
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = forward(layer, x, sequences)
        loss = (out.float() ** 2).sum()
    loss.backward()
    return [out.detach(), x.grad] + [parameter.grad for parameter in layer.parameters()]


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("autocast", [False, True])
def test_fused_layer_trains_bit_identically_to_the_unfused_one(backend: str, autocast: bool) -> None:
    torch.manual_seed(0)
    layer = HSTULayer(12, 2, 4, 6, dropout=0.3, max_seq_len=16, rab="pos_time", attention_backend=backend,
                      recompute_in_backward="always").train()
    sequences = sequences_of([5, 16, 9])
    x = torch.randn(30, 12)
    fused = outputs_and_grads(layer, lambda module, inputs, batch: module(inputs, batch), x, sequences, autocast, 7)
    plain = outputs_and_grads(layer, unfused_forward, x, sequences, autocast, 7)
    assert len(fused) == len(plain) and all(grad is not None for grad in fused)
    for got, want in zip(fused, plain):
        assert torch.equal(got, want)
    # Dropout was on: a different mask (seed) changes the result, so the masks above really matched.
    assert not torch.equal(outputs_and_grads(layer, unfused_forward, x, sequences, autocast, 8)[0], plain[0])


def test_backward_leaves_the_random_stream_where_forward_left_it() -> None:
    torch.manual_seed(0)
    layer = HSTULayer(12, 2, 4, 6, dropout=0.3, max_seq_len=16, rab="none", attention_backend="cpu",
                      recompute_in_backward="always").train()
    sequences = sequences_of([5, 9])
    x = torch.randn(14, 12, requires_grad=True)
    out = layer(x, sequences)
    after_forward = torch.get_rng_state()
    out.sum().backward()
    assert torch.equal(torch.get_rng_state(), after_forward)


def test_without_grad_the_layer_gives_the_training_forward_in_eval_mode() -> None:
    torch.manual_seed(0)
    layer = HSTULayer(12, 2, 4, 6, dropout=0.3, max_seq_len=16, rab="pos", attention_backend="cpu",
                      recompute_in_backward="always").eval()
    sequences = sequences_of([5, 9])
    x = torch.randn(14, 12)
    with torch.no_grad():
        plain = layer(x, sequences)
    assert torch.equal(layer(x, sequences).detach(), plain)


def test_auto_fuses_on_cuda_tensors_only_and_never_without_grad() -> None:
    x = torch.zeros(3, 12)
    modes = {mode: HSTULayer(12, 2, 4, 6, dropout=0.0, max_seq_len=4, recompute_in_backward=mode)
             for mode in ("auto", "always", "never")}
    assert {mode: layer.fused(x) for mode, layer in modes.items()} == {"auto": False, "always": True, "never": False}
    with torch.no_grad():
        assert not modes["always"].fused(x)
    with pytest.raises(ValueError, match="recompute_in_backward must be one of auto, always, never"):
        HSTULayer(12, 2, 4, 6, dropout=0.0, max_seq_len=4, recompute_in_backward="sometimes")
