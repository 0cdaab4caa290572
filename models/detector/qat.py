"""Brevitas QAT version of FullyCon (any weight/activation width 2..8, 8-bit input and output)."""

from __future__ import annotations

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from models.detector.fullycon import FullyCon, FullyConShape
from qphy.errors import CheckpointError
from quant.recipes import Recipe


class QuantMLP(nn.Module):
    """A chain of Linear layers with every tensor on the datapath quantized as :class:`Recipe`
    says (FullyCon, and the fixed-channel DetNet of :mod:`models.detector.detnet_hw`).

    Layout: QuantIdentity(input) -> [QuantLinear -> QuantReLU] x (len(sizes) - 1) ->
    QuantLinear -> QuantIdentity(output). The output quantizer makes the detector's soft output
    an integer times a power-of-two scale, so the hardware's last layer ends in thresholds too.
    """

    def __init__(self, recipe: Recipe, sizes: list[tuple[int, int]]):
        super().__init__()
        self.recipe = recipe
        self.inp = QuantIdentity(return_quant_tensor=True, **recipe.input())
        layers: list[nn.Module] = []
        for idx, (i, o) in enumerate(sizes):
            layers.append(QuantLinear(i, o, bias=True, **recipe.weight(), **recipe.bias()))
            if idx < len(sizes) - 1:
                layers.append(QuantReLU(return_quant_tensor=True, **recipe.relu()))
        self.net = nn.Sequential(*layers)
        self.out = QuantIdentity(return_quant_tensor=False, **recipe.output())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(self.inp(y)))

    def linears(self) -> list[QuantLinear]:
        return [m for m in self.net if isinstance(m, QuantLinear)]

    def load_linears(self, float_linears: list[nn.Linear]) -> None:
        """Copies weights and biases of float Linear layers of the same sizes."""
        mine = self.linears()
        sizes = [(m.in_features, m.out_features) for m in float_linears]
        if sizes != [(m.in_features, m.out_features) for m in mine]:
            raise CheckpointError(f"float layers {sizes} do not fit the QAT model")
        with torch.no_grad():
            for q, f in zip(mine, float_linears, strict=True):
                q.weight.copy_(f.weight)
                q.bias.copy_(f.bias)


class QuantFullyCon(QuantMLP):
    """FullyCon (:class:`models.detector.fullycon.FullyCon`) as a :class:`QuantMLP`."""

    def __init__(self, recipe: Recipe, shape: FullyConShape | None = None):
        shape = shape or FullyConShape()
        super().__init__(recipe, shape.layer_sizes())
        self.shape = shape

    def load_float(self, model: FullyCon) -> None:
        """Initialise the weights from a trained float FullyCon of the same shape."""
        if model.shape != self.shape:
            raise CheckpointError(
                f"float checkpoint has shape {model.shape}, QAT model wants {self.shape}"
            )
        self.load_linears([m for m in model.net if isinstance(m, nn.Linear)])
