"""The multilayer perceptron every DLRM-family model is built from, and its FLOPs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

from torch import Tensor, nn

from model.dropout import Dropout
from model.flops import matmul_flops

# A multi-task top: built for an input width, maps [N, in_dim] -> [N, num_tasks] logits and
# implements ``forward_flops(rows)``. Models receive a factory because only they know in_dim.
TopFactory = Callable[[int], nn.Module]


class MLP(nn.Module):
    """Linear layers of widths dims[0] -> dims[1] -> ... -> dims[-1] with an activation between them.

    The last layer is followed by the activation only when ``activate_last`` (a hidden
    representation such as an MMoE expert's output, rather than logits).
    """

    def __init__(
        self,
        dims: Sequence[int],
        activate_last: bool = False,
        dropout: float = 0.0,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if len(dims) < 2 or min(dims) < 1:
            raise ValueError(f"an MLP needs an input and an output width, all >= 1; got dims {tuple(dims)}")
        self.dims = tuple(int(d) for d in dims)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(pairwise(self.dims)):
            layers.append(nn.Linear(width_in, width_out))
            if activate_last or index < len(self.dims) - 2:
                layers.append(activation())
                if dropout > 0:
                    layers.append(Dropout(dropout))
        self.layers = nn.Sequential(*layers)

    @property
    def out_dim(self) -> int:
        return self.dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward_flops(self, rows: int) -> float:
        """One [rows, a] x [a, b] matmul per layer (biases and activations count 0)."""
        return sum(matmul_flops(rows, a, b) for a, b in pairwise(self.dims))
