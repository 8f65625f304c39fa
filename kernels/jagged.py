"""Conversions between jagged tensors (values [T, ...] + offsets [B+1]) and padded ones.

A jagged batch stores B sequences back to back; sequence b occupies rows
``offsets[b]:offsets[b+1]`` of the values tensor. Padding is only ever to the longest
sequence in the batch, never to a global maximum.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_from_offsets(offsets: Tensor) -> Tensor:
    """[B] sequence lengths from [B+1] offsets."""
    return offsets[1:] - offsets[:-1]


def offsets_from_lengths(lengths: Tensor) -> Tensor:
    """[B+1] int64 offsets (starting at 0) from [B] lengths."""
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=lengths.device)
    offsets[1:] = torch.cumsum(lengths.to(torch.int64), dim=0)
    return offsets


def token_coordinates(offsets: Tensor) -> tuple[Tensor, Tensor]:
    """For every token, its sequence index and its position inside that sequence ([T] each)."""
    lengths = lengths_from_offsets(offsets)
    total = int(offsets[-1].item()) if offsets.numel() else 0
    sequence_index = torch.repeat_interleave(torch.arange(lengths.numel(), device=offsets.device), lengths)
    position = torch.arange(total, device=offsets.device) - offsets[:-1][sequence_index]
    return sequence_index, position


def token_positions(offsets: Tensor, num_targets: Tensor | None = None) -> Tensor:
    """[T] int64 position of every token inside its sequence, every target clamped to the history's end.

    The last ``num_targets[b]`` tokens of sequence b are candidates, each placed as if scored alone
    right after the history (M-FALCON, Appendix H): position ``min(index, n_b - num_targets[b])``.
    This is the one definition of "target-aware positions" used by rab^{p} (kernels/reference.py,
    mirrored in the Triton kernels), absolute position embeddings (model/embeddings.py) and RoPE
    (model/transformerpp.py).
    """
    sequence_index, position = token_coordinates(offsets)
    if num_targets is None:
        return position
    history_end = lengths_from_offsets(offsets) - num_targets.to(offsets.dtype)  # [B]
    return torch.minimum(position, history_end[sequence_index])


def target_positions(history_offsets: Tensor, target_offsets: Tensor) -> Tensor:
    """[M] position of every target kept apart from its history (M-FALCON's cached pass): n_b.

    :func:`token_positions` with the histories and targets stored as separate jagged batches:
    user b's targets ``target_offsets[b]:target_offsets[b+1]`` all sit right after its history.
    """
    return torch.repeat_interleave(lengths_from_offsets(history_offsets), lengths_from_offsets(target_offsets))


def jagged_to_padded(
    values: Tensor, offsets: Tensor, max_len: int, padding_value: float = 0.0,
    coordinates: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """[T, *rest] jagged values -> [B, max_len, *rest] padded (right padding).

    ``coordinates`` (from :func:`token_coordinates`) may be passed in to avoid recomputing them
    when several tensors of one batch are padded.
    """
    batch_size = offsets.numel() - 1
    padded = values.new_full((batch_size, max_len, *values.shape[1:]), padding_value)
    sequence_index, position = coordinates if coordinates is not None else token_coordinates(offsets)
    padded[sequence_index, position] = values
    return padded


def padded_to_jagged(padded: Tensor, offsets: Tensor, coordinates: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """[B, L, *rest] padded -> [T, *rest] jagged values (inverse of :func:`jagged_to_padded`)."""
    sequence_index, position = coordinates if coordinates is not None else token_coordinates(offsets)
    return padded[sequence_index, position]
