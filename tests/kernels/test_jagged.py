"""Jagged helpers: target-aware token positions, the one definition rab^{p}, position tables and RoPE share."""

from __future__ import annotations

import torch

from kernels.jagged import token_positions
from kernels.reference import padded_positions
from model.embeddings import InputLayer

torch.set_num_threads(1)


def test_positions_restart_per_sequence_and_put_targets_at_the_history_end() -> None:
    offsets = torch.tensor([0, 3, 7])
    assert token_positions(offsets).tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert token_positions(offsets, torch.tensor([1, 2])).tolist() == [0, 1, 2, 0, 1, 2, 2]


def test_every_target_of_a_sequence_shares_the_position_after_its_history() -> None:
    offsets = torch.tensor([0, 1, 6, 6, 10])  # lengths 1, 5, 0, 4
    positions = token_positions(offsets, torch.tensor([1, 3, 0, 4]))
    assert positions.tolist() == [0, 0, 1, 2, 2, 2, 0, 0, 0, 0]


def test_padded_positions_are_the_jagged_ones_laid_out_per_sequence() -> None:
    offsets, num_targets = torch.tensor([0, 2, 7]), torch.tensor([1, 2])
    padded = padded_positions(offsets, num_targets, max_len=5)
    assert padded.tolist() == [[0, 1, 0, 0, 0], [0, 1, 2, 3, 3]]  # padding slots are 0 (masked anyway)


def test_input_layer_places_every_target_at_the_history_end() -> None:
    layer = InputLayer(embedding_dim=4, max_seq_len=8, dropout=0.0).eval()
    offsets, tokens = torch.tensor([0, 5]), torch.zeros(5, 4)
    out = layer(tokens, offsets, torch.tensor([2]))
    torch.testing.assert_close(out, layer.positions.weight[[0, 1, 2, 3, 3]])
