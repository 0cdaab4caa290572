"""FullyCon: the fully connected MIMO detector of the seed paper's case study.

Input: the real-valued received vector y (N values, N=30 for a 30x20 real BPSK system).
Output: K soft symbol estimates (K=20); the hard decision is their sign. Four hidden layers of
10K=200 units with ReLU; the last layer has K outputs and no activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.registry import register


@dataclass(frozen=True)
class FullyConShape:
    """Layer sizes of FullyCon.

    Attributes:
        n_rx: Input width N (real-valued received samples).
        k_tx: Output width K (real-valued transmitted symbols).
        hidden: Width of each hidden layer (10K in the paper).
        n_hidden_layers: Number of hidden fully connected layers.
    """

    n_rx: int = 30
    k_tx: int = 20
    hidden: int = 200
    n_hidden_layers: int = 4

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(in, out) of every Linear layer, input to output."""
        dims = [self.n_rx] + [self.hidden] * self.n_hidden_layers + [self.k_tx]
        return list(zip(dims[:-1], dims[1:], strict=True))

    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_sizes())


@register("fullycon")
class FullyCon(nn.Module):
    """Float FullyCon detector."""

    def __init__(self, shape: FullyConShape | None = None):
        super().__init__()
        self.shape = shape or FullyConShape()
        layers: list[nn.Module] = []
        sizes = self.shape.layer_sizes()
        for idx, (i, o) in enumerate(sizes):
            layers.append(nn.Linear(i, o))
            if idx < len(sizes) - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)
