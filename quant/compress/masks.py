"""Unstructured (magnitude) pruning: masks over the weights of any model's linear/conv layers.

Contract: :func:`magnitude_masks` looks at a model (float or Brevitas QAT: ``QuantLinear`` and
``QuantConv2d`` are ``nn.Linear``/``nn.Conv2d`` subclasses) and returns one boolean keep-mask
per prunable weight, ``|w| >= t``. Biases are never pruned. :class:`MaskCallback` is a pass of
the one trainer (:func:`quant.trainer.fit`): it zeroes the pruned weights before the first step
and again after every optimizer step, so they stay exactly 0.0 through fine-tuning, QAT and
export (a quantized 0.0 is the integer 0 for the symmetric, zero-point-free weight quantizers
of :mod:`quant.recipes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from qphy.errors import ConfigError
from quant.trainer import Callback

#: Layer types whose weights are pruned (Brevitas quant layers subclass these).
PRUNABLE = (nn.Linear, nn.Conv2d)

Masks = dict[str, torch.Tensor]


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose weights may be pruned, by module name, in module order."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, PRUNABLE)}


def magnitude_masks(model: nn.Module, threshold: float) -> Masks:
    """Keep-masks ``|w| >= threshold`` for every prunable layer (one global threshold).

    Args:
        model: Any model with linear/conv layers; its float (latent) weights are compared.
        threshold: Absolute weight magnitude below which a weight is pruned; 0 prunes nothing.

    Raises:
        ConfigError: ``threshold`` is negative or not finite.
    """
    if not (0.0 <= float(threshold) < float("inf")):
        raise ConfigError(f"pruning threshold must be finite and >= 0, got {threshold!r}")
    with torch.no_grad():
        return {
            name: mod.weight.detach().abs() >= threshold
            for name, mod in prunable_layers(model).items()
        }


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the weights that ``masks`` prune (in place); unknown or misshapen masks raise.

    Raises:
        ConfigError: A mask names no prunable layer of ``model`` or has the wrong shape.
    """
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in layers:
                raise ConfigError(f"mask for '{name}', which is not a prunable layer")
            weight = layers[name].weight
            if tuple(mask.shape) != tuple(weight.shape):
                raise ConfigError(
                    f"mask for '{name}' has shape {tuple(mask.shape)}, weight {tuple(weight.shape)}"
                )
            weight.mul_(mask.to(weight.dtype))


def sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of the masked weights that are pruned (0 when there are no weights)."""
    total = sum(int(m.numel()) for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return 0.0 if total == 0 else 1.0 - kept / total


def combine(*mask_sets: Mapping[str, torch.Tensor]) -> Masks:
    """Element-wise AND of mask sets (a weight is kept only if every set keeps it)."""
    out: Masks = {}
    for masks in mask_sets:
        for name, mask in masks.items():
            out[name] = mask.clone() if name not in out else out[name] & mask
    return out


class MaskCallback(Callback):
    """Keeps pruned weights at zero during :func:`quant.trainer.fit`.

    The masks are applied once before the first step and after every optimizer step (Adam's
    moments would otherwise move a pruned weight off zero again).

    Args:
        masks: Keep-masks by layer name, as :func:`magnitude_masks` returns them.
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        self.masks = dict(masks)

    def on_train_begin(self, model: nn.Module) -> None:
        apply_masks(model, self.masks)

    def after_step(self, model: nn.Module, step: int) -> None:
        apply_masks(model, self.masks)


def zero_weights(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """``(layer name, bool tensor)``: where each prunable layer's float weight is exactly 0."""
    for name, mod in prunable_layers(model).items():
        yield name, mod.weight.detach() == 0
