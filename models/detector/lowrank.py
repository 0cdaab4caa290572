"""Low-rank factorisation of FullyCon's linear layers (the generic layer is
:class:`quant.compress.lowrank.LowRankLinear`): :func:`factorize` returns a copy of a float
FullyCon with the chosen layers factorised; fine-tune it with
:func:`models.detector.finetune.finetune`."""

from __future__ import annotations

import copy
from collections.abc import Mapping

from torch import nn

from models.detector.fullycon import FullyCon
from qphy.errors import ConfigError
from quant.compress.lowrank import LowRankLinear, factorize_linear


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
