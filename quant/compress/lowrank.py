"""Low-rank factorisation of fully connected layers (truncated SVD), fine-tuned with the trainer.

Contract: :func:`factorize_linear` turns ``nn.Linear(in, out)`` into a :class:`LowRankLinear`:
``Linear(in, r, bias=False)`` followed by ``Linear(r, out)`` (the original bias), from the
truncated SVD ``W = U S V^T`` with ``sqrt(S)`` split between the two factors (first ``sqrt(S_r)
V_r^T``, second ``U_r sqrt(S_r)``): at full rank it computes the same function, at rank ``r``
the best rank-``r`` approximation of ``W`` (Eckart-Young). :func:`factorize` returns a copy of
a float FullyCon with the chosen layers factorised; fine-tune it with
:func:`quant.compress.passes.finetune` (the one trainer, no pass needed). The factorised
model's accounting (:func:`quant.compress.accounting.account`) counts both factors as layers:
weights ``r * (in + out)`` instead of ``in * out``, FLOPs per frame ``2 r (in + out)``; a
layer saves weights only when ``r < in * out / (in + out)`` (100 for a 200x200 layer).

FINN: a factorised layer is two MatMuls with no nonlinearity between them; a QAT version would
need a quantizer on the rank-``r`` intermediate (FINN builds two MVAUs), which is not done here:
this module compresses float models.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from models.fullycon import FullyCon
from qphy.errors import ConfigError


class LowRankLinear(nn.Module):
    """``second(first(x))``: ``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def factorize_linear(layer: nn.Linear, rank: int) -> LowRankLinear:
    """The rank-``rank`` truncated-SVD factorisation of ``layer`` (a new module).

    The SVD is computed in float64 and split ``sqrt(S)`` to each factor, so both factors have
    the same scale (better conditioned for fine-tuning than ``U`` and ``S V^T``).

    Raises:
        ConfigError: ``rank`` is not in ``1..min(in, out)``.
    """
    n_out, n_in = layer.weight.shape
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n_in, n_out):
        raise ConfigError(
            f"rank of a {n_in}->{n_out} layer must be an integer in 1..{min(n_in, n_out)}, "
            f"got {rank!r}"
        )
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(layer.weight.detach().to(torch.float64), full_matrices=False)
        root = torch.sqrt(s[:rank])
        out = LowRankLinear(n_in, n_out, rank, bias=layer.bias is not None)
        dtype = layer.weight.dtype
        out.first.weight.copy_((root[:, None] * vh[:rank]).to(dtype))
        out.second.weight.copy_((u[:, :rank] * root[None, :]).to(dtype))
        if layer.bias is not None:
            out.second.bias.copy_(layer.bias.detach())
    return out


def linear_indices(model: FullyCon) -> list[int]:
    """Positions in ``model.net`` of its Linear layers, input to output (0-based order of these
    positions is the layer number :func:`factorize` takes)."""
    if not isinstance(model, FullyCon):
        raise ConfigError(f"low-rank factorisation needs a float FullyCon, got {type(model)}")
    return [i for i, m in enumerate(model.net) if isinstance(m, nn.Linear | LowRankLinear)]


def factorize(model: FullyCon, ranks: Mapping[int, int]) -> FullyCon:
    """A copy of ``model`` with Linear layer ``k`` (0 = input layer) factorised at ``ranks[k]``.

    Args:
        model: A float FullyCon (not changed).
        ranks: Layer number -> rank, e.g. ``{1: 20, 2: 20, 3: 20}`` for the three 200x200
            hidden-to-hidden layers of the shipped FullyCon (see :func:`hidden_ranks`).

    Raises:
        ConfigError: Not a FullyCon, a layer number out of range or already factorised, or a
            rank out of range.
    """
    positions = linear_indices(model)
    bad = [k for k in ranks if not 0 <= k < len(positions)]
    if bad:
        raise ConfigError(f"layer numbers {bad} out of range 0..{len(positions) - 1}")
    out = copy.deepcopy(model)
    for k, rank in sorted(ranks.items()):
        layer = out.net[positions[k]]
        if not isinstance(layer, nn.Linear):
            raise ConfigError(f"layer {k} is already factorised")
        out.net[positions[k]] = factorize_linear(layer, rank)
    return out


def hidden_ranks(model: FullyCon, rank: int) -> dict[int, int]:
    """``{k: rank}`` for every hidden-to-hidden Linear layer (all but the first and last)."""
    return {k: rank for k in range(1, len(linear_indices(model)) - 1)}
