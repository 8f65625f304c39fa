"""The jagged work table covers every block of every sequence exactly once, heaviest first."""

from __future__ import annotations

import pytest
import torch

from kernels.jagged import offsets_from_lengths
from kernels.triton_launch import backward_configs, build_work_tables, config_pruner, forward_configs


@pytest.mark.parametrize("by", ["forward", "backward"])
def test_work_table_lists_each_piece_once_and_orders_by_work(by: str) -> None:
    lengths = torch.tensor([300, 0, 1, 128, 129, 40])
    offsets = offsets_from_lengths(lengths)
    tables = build_work_tables(offsets, int(lengths.sum()), chunk=128)
    table = getattr(tables, by)
    assert table.dtype == torch.int32 and table.shape == (tables.pieces, 2)
    sequence, start = table[:, 0], table[:, 1]
    used = sequence >= 0
    pieces = sorted(zip(sequence[used].tolist(), start[used].tolist()))
    expected = sorted((b, first) for b, n in enumerate(lengths.tolist()) for first in range(0, n, 128))
    assert pieces == expected
    # Idle slots (the table is sized by an upper bound) come last.
    assert not used[used.sum():].any()
    length = lengths[sequence[used].long()]
    work = torch.minimum(start[used] + 128, length) if by == "forward" else length - start[used]
    assert torch.all(work[:-1] >= work[1:])


def test_configs_larger_than_the_length_bucket_are_pruned() -> None:
    prune = config_pruner(forward_configs)
    on_cpu = {"Q": torch.zeros(1)}  # no CUDA device: Hopper's list
    small = prune(forward_configs(), {**on_cpu, "length_bucket": 64})
    assert small and all(max(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) <= 64 for c in small)
    assert prune(forward_configs(), {**on_cpu, "length_bucket": 8192}) == forward_configs()


def test_the_autotuners_lists_hold_every_targets_configs() -> None:
    # The autotuner is built once with the capability-90 list; older GPUs only prune from it.
    def keys(configs):
        return {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in configs}

    for configs_for in (forward_configs, backward_configs):
        assert keys(configs_for(80)) <= keys(configs_for())
    assert keys(backward_configs(80)) < keys(backward_configs(90))
