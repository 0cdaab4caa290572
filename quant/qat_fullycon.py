"""Brevitas QAT version of FullyCon (any weight/activation width 2..8, 8-bit input and output)."""

from __future__ import annotations

import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from models.fullycon import FullyCon, FullyConShape
from qphy.errors import CheckpointError
from quant.recipes import Recipe


class QuantFullyCon(nn.Module):
    """FullyCon with every tensor on the datapath quantized as :class:`Recipe` says.

    Layout: QuantIdentity(input) -> [QuantLinear -> QuantReLU] x n_hidden -> QuantLinear ->
    QuantIdentity(output). The output quantizer makes the detector's soft output an integer
    times a power-of-two scale, so the hardware's last layer ends in thresholds too.
    """

    def __init__(self, recipe: Recipe, shape: FullyConShape | None = None):
        super().__init__()
        self.recipe = recipe
        self.shape = shape or FullyConShape()
        self.inp = QuantIdentity(return_quant_tensor=True, **recipe.input())
        layers: list[nn.Module] = []
        sizes = self.shape.layer_sizes()
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

    def load_float(self, model: FullyCon) -> None:
        """Initialise the weights from a trained float FullyCon of the same shape."""
        if model.shape != self.shape:
            raise CheckpointError(
                f"float checkpoint has shape {model.shape}, QAT model wants {self.shape}"
            )
        float_linears = [m for m in model.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for q, f in zip(self.linears(), float_linears, strict=True):
                q.weight.copy_(f.weight)
                q.bias.copy_(f.bias)
