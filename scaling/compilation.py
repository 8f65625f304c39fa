"""``train.compile``: torch.compile the dense layers of a model, in place, leaving the jagged bookkeeping eager.

What is compiled is every layer of the model's layer stacks (each child of an ``nn.ModuleList``
that is not an embedding table): HSTU's and the Transformers' encoder layers, DCN-v2's cross
layers, DHEN's ensemble layers, MMoE's experts and towers. Compiling the whole model instead
breaks its graph at every data-dependent size of the jagged batch (offsets read with ``.item()``)
and recompiles each piece: minutes on a CPU for a two-layer HSTU. A layer is compiled with
dynamic shapes (``dynamic=True``), since token counts change from batch to batch, and in place
(``nn.Module.compile``), so parameters, ``state_dict`` keys and the optimizer are untouched.
"""

from __future__ import annotations

from torch import nn

NOT_DENSE = (nn.Embedding, nn.EmbeddingBag)  # table lookups: nothing for a compiler to fuse


def compile_dense_layers(model: nn.Module) -> list[str]:
    """Compile each dense layer of ``model``'s layer stacks in place; returns their qualified names."""
    compiled: list[str] = []
    _compile_stacks(model, "", compiled)
    return compiled


def _compile_stacks(module: nn.Module, prefix: str, compiled: list[str]) -> None:
    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        if isinstance(module, nn.ModuleList) and not isinstance(child, NOT_DENSE):
            child.compile(dynamic=True)
            compiled.append(qualified)
            continue  # its sublayers are traced inside its graph
        _compile_stacks(child, f"{qualified}.", compiled)
