"""Green DetNet: sparsity regularisers, pruning and the paper's accounting, as passes of the one
trainer on a :class:`.detnet.DetNet` (trained by :mod:`.detnet_train`).

* R-DetNet: L1 on the weight matrices (:func:`l1_penalty`, i.e. :class:`quant.trainer.L1Penalty`),
* R-DetNet(GL): group lasso with every weight column a group (:class:`ColumnGroupLasso`),
* R-DetNet(SGL): sparse group lasso, ``l1 * L1 + gl * GL`` (:class:`SparseGroupLasso`),

then pruning by :func:`threshold_masks` (per layer, ``|w| >= alpha * max|w|``) and
:func:`column_masks` (a column is kept when its L2 norm is ``>= beta`` times the layer's largest
column norm), held by :class:`quant.compress.masks.MaskCallback` during fine-tuning
(:func:`prune_and_finetune`). The paper's accounting is :mod:`models.detector.detnet_cost`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch
from torch import nn

from models.detector.detnet import DetNet
from models.detector.detnet_train import DetNetTrainConfig, train_detnet
from qphy.errors import ConfigError
from quant.compress.masks import MaskCallback, Masks, combine, prunable_layers, sparsity
from quant.trainer import Callback, FitResult, L1Penalty

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Green DetNet: regularisers
# ---------------------------------------------------------------------------------------------


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices of every linear layer (biases and thresholds are not regularised)."""
    return [mod.weight for mod in prunable_layers(model).values()]


def l1_penalty(weight: float) -> L1Penalty:
    """R-DetNet: ``weight * sum |w|`` over the weight matrices."""
    return L1Penalty(weight, weight_matrices)


def column_group_norms(model: nn.Module) -> torch.Tensor:
    """Sum over the layers of the L2 norms of the weight columns (one group per input)."""
    return sum(w.norm(dim=0).sum() for w in weight_matrices(model))


class ColumnGroupLasso(Callback):
    """R-DetNet(GL): adds ``weight * sum_layers sum_j ||W[:, j]||_2`` to the loss.

    A column of a ``nn.Linear`` weight (out x in) holds every weight leaving one input, so a
    zero column removes that input from the layer.

    Raises:
        ConfigError: ``weight`` negative or not finite.
    """

    def __init__(self, weight: float):
        if not 0.0 <= float(weight) < math.inf:
            raise ConfigError(f"group-lasso weight must be finite and >= 0, got {weight!r}")
        self.weight = float(weight)

    def loss(self, model, loss, inputs, targets):
        if self.weight == 0.0:
            return loss
        return loss + self.weight * column_group_norms(model)


class SparseGroupLasso(Callback):
    """R-DetNet(SGL): adds ``l1 * sum |w| + gl * sum_j ||W[:, j]||_2`` to the loss.

    Raises:
        ConfigError: A weight negative or not finite.
    """

    def __init__(self, l1: float, gl: float):
        for name, v in (("l1", l1), ("gl", gl)):
            if not 0.0 <= float(v) < math.inf:
                raise ConfigError(f"sparse-group-lasso {name} must be finite and >= 0, got {v!r}")
        self.l1 = float(l1)
        self.gl = float(gl)

    def loss(self, model, loss, inputs, targets):
        ws = weight_matrices(model)
        l1 = sum(w.abs().sum() for w in ws)
        return loss + self.l1 * l1 + self.gl * column_group_norms(model)


# ---------------------------------------------------------------------------------------------
# Green DetNet: pruning
# ---------------------------------------------------------------------------------------------


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must lie in [0, 1), got {value!r}")


def threshold_masks(model: nn.Module, alpha: float) -> Masks:
    """Per-layer keep-masks ``|w| >= alpha * max|w|`` (alpha = 0 keeps everything)."""
    _check_fraction("alpha", alpha)
    with torch.no_grad():
        return {
            name: mod.weight.abs() >= alpha * mod.weight.abs().max()
            for name, mod in prunable_layers(model).items()
        }


def column_masks(model: nn.Module, beta: float) -> Masks:
    """Per-layer keep-masks of whole columns: a column stays when its L2 norm is ``>= beta``
    times the layer's largest column norm (beta = 0 keeps everything)."""
    _check_fraction("beta", beta)
    with torch.no_grad():
        out = {}
        for name, mod in prunable_layers(model).items():
            norms = mod.weight.norm(dim=0)
            keep = norms >= beta * norms.max()
            out[name] = keep.unsqueeze(0).expand_as(mod.weight).clone()
        return out


def prune_and_finetune(
    model: DetNet,
    cfg: DetNetTrainConfig,
    alpha: float,
    beta: float = 0.0,
    steps: int = 1000,
    lr: float = 1e-4,
) -> tuple[DetNet, Masks, FitResult]:
    """Prunes ``model`` in place (threshold and column masks combined) and fine-tunes it with
    the masks held by :class:`~quant.compress.masks.MaskCallback`.

    Returns:
        ``(model, masks, fit_result)``.
    """
    masks = combine(threshold_masks(model, alpha), column_masks(model, beta))
    log.info("pruning alpha=%g beta=%g: %.1f %% of the weights", alpha, beta, 100 * sparsity(masks))
    model, result = train_detnet(
        replace(cfg, lr=lr),
        model,
        callbacks=[MaskCallback(masks)],
        steps=steps,
        seed=cfg.seed + 1,
        description=f"finetune a{alpha:g} b{beta:g}",
    )
    return model, masks, result
