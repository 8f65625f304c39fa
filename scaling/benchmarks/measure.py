"""How the benchmarks measure: GPU time of a closure, activation bytes autograd keeps, CUDA peak memory.

torch and triton are imported inside the functions so that table-only code never needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# A timer runs a closure and returns its milliseconds, or None when it does not time (dry runs).
Timer = Callable[[Callable[[], object]], "float | None"]

# triton.testing.do_bench settings: milliseconds of warm-up, then of timed repetitions.
WARMUP_MS = 25
REPEAT_MS = 100


def untimed(fn: Callable[[], object]) -> None:
    """The dry runs' timer: run once so every path executes, report no time."""
    fn()
    return None


def median_milliseconds(fn: Callable[[], object]) -> float:
    """Median CUDA time of ``fn`` in ms: ``triton.testing.do_bench`` (warm-up, L2 flushed between runs)."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=WARMUP_MS, rep=REPEAT_MS))


def torch_dtype(name: str):
    """The torch dtype a benchmark's ``--dtype`` names ('bf16' or 'fp16')."""
    import torch

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {', '.join(dtypes)}; got {name!r}")
    return dtypes[name]


def saved_activation_bytes(forward: Callable[[], object], excluded: Iterable) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``forward()`` runs.

    This is the activation memory a layer holds between its forward and its backward, measured the
    same way for every implementation and on any device. A storage is counted once however many
    views of it are saved (HSTU's U, V, Q, K are views of one SiLU output) and in full even when
    only a view of it is saved (the whole buffer stays alive). Storages of ``excluded`` tensors
    (parameters, index tensors of the batch) are not activations and are left out; the layer's
    input is counted, as in the paper's accounting (Section 3.3).
    """
    import torch

    skip = {_storage(tensor).data_ptr() for tensor in excluded}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = _storage(tensor)
        if storage.data_ptr() not in skip:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = forward()
    del output  # frees the graph and the saved tensors
    return sum(kept.values())


def _storage(tensor):
    """The storage behind a tensor; a nested jagged tensor's is that of its values buffer."""
    import torch

    if tensor.is_nested:
        with torch.no_grad():
            tensor = tensor.values()
    return tensor.untyped_storage()


def cuda_peak_bytes(step: Callable[[], object], device) -> int:
    """Peak CUDA memory ``step()`` allocates above what was allocated before it (bytes).

    ``step`` runs once untimed first, so gradients, autotuning and library workspaces already exist
    and count as the baseline with the parameters and inputs; the second run's peak above that
    baseline is the activations plus the backward's transient buffers.
    """
    import torch

    step()
    torch.cuda.synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - baseline)
