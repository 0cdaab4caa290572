"""Structured pruning of FullyCon: whole hidden neurons go, and the model physically shrinks.

Contract: :func:`neuron_masks` ranks the neurons of every hidden layer by the L1 norm of their
incoming weights and keeps the strongest; :func:`neuron_weight_masks` turns that into weight
masks (the neuron's incoming row and its outgoing column) for :class:`~quant.compress.masks.
MaskCallback`, :func:`zero_neurons` also zeroes the dropped neurons' biases (a dropped neuron
then outputs ReLU(0) = 0), and :func:`shrink` builds the physically smaller float or QAT
FullyCon (shape :class:`FullyConWidths`, one width per hidden layer) whose outputs equal the
masked original's: FINN then builds smaller MVAUs. :class:`GroupLasso` is a loss pass of the one
trainer that pushes whole neurons towards zero before they are ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.detector.fullycon import FullyCon, FullyConShape
from models.detector.qat import QuantFullyCon
from qphy.errors import ConfigError
from quant.compress.masks import Masks
from quant.trainer import Callback

FullyConLike = FullyCon | QuantFullyCon


@dataclass(frozen=True)
class FullyConWidths:
    """FullyCon layer sizes with one width per hidden layer (``detector.fullycon.FullyConShape``
    has one width for all); FullyCon and QuantFullyCon build from it unchanged.

    Attributes:
        n_rx: Input width N.
        k_tx: Output width K.
        widths: Width of each hidden layer, input side first.
    """

    n_rx: int
    k_tx: int
    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.widths or any(int(w) < 1 for w in self.widths):
            raise ConfigError(f"every hidden layer needs >= 1 neuron, got {self.widths}")

    @classmethod
    def from_shape(cls, shape: FullyConShape | FullyConWidths) -> FullyConWidths:
        if isinstance(shape, FullyConWidths):
            return shape
        return cls(shape.n_rx, shape.k_tx, (shape.hidden,) * shape.n_hidden_layers)

    @property
    def n_hidden_layers(self) -> int:
        return len(self.widths)

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(in, out) of every Linear layer, input to output."""
        dims = [self.n_rx, *self.widths, self.k_tx]
        return list(zip(dims[:-1], dims[1:], strict=True))

    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_sizes())


def _linear_names(model: FullyConLike) -> list[str]:
    """State-dict prefixes of the Linear layers of ``model.net``, input to output."""
    if not isinstance(model, FullyCon | QuantFullyCon):
        raise ConfigError(f"structured pruning needs a FullyCon, got {type(model).__name__}")
    return [f"net.{i}" for i, m in enumerate(model.net) if isinstance(m, nn.Linear)]


def _linears(model: FullyConLike) -> list[nn.Linear]:
    _linear_names(model)  # type check
    return [m for m in model.net if isinstance(m, nn.Linear)]


def neuron_l1(model: FullyConLike) -> list[torch.Tensor]:
    """L1 norm of each hidden neuron's incoming weights, one tensor per hidden layer."""
    return [lin.weight.detach().abs().sum(dim=1) for lin in _linears(model)[:-1]]


def neuron_masks(model: FullyConLike, fraction: float, multiple_of: int = 1) -> list[torch.Tensor]:
    """Keep-masks over the hidden neurons: the strongest by L1 norm in every hidden layer.

    Each layer keeps ``n - floor(fraction * n)`` neurons, rounded up to a multiple of
    ``multiple_of`` (so FINN's folding finds divisors: PE must divide the layer width), never
    more than ``n``. Ties keep the lower index.

    Raises:
        ConfigError: ``fraction`` outside [0, 1) or ``multiple_of`` < 1.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"neuron fraction to prune must be in [0, 1), got {fraction}")
    if multiple_of < 1:
        raise ConfigError(f"multiple_of must be >= 1, got {multiple_of}")
    masks = []
    for score in neuron_l1(model):
        n = int(score.numel())
        keep = n - int(fraction * n)
        keep = min(n, -(-keep // multiple_of) * multiple_of)
        order = torch.sort(-score, stable=True).indices[:keep]
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order] = True
        masks.append(mask)
    return masks


def neuron_weight_masks(model: FullyConLike, keep: list[torch.Tensor]) -> Masks:
    """Weight keep-masks (for MaskCallback) of the neuron masks: a dropped neuron loses its
    incoming row and its outgoing column."""
    names = _linear_names(model)  # == the module names prunable_layers() uses
    lins = _linears(model)
    _check_keep(model, keep)
    masks: Masks = {}
    for li, (name, lin) in enumerate(zip(names, lins, strict=True)):
        m = torch.ones_like(lin.weight, dtype=torch.bool)
        if li < len(keep):
            m &= keep[li].reshape(-1, 1)
        if li > 0:
            m &= keep[li - 1].reshape(1, -1)
        masks[name] = m
    return masks


def zero_neurons(model: FullyConLike, keep: list[torch.Tensor]) -> None:
    """Zero the dropped neurons' incoming rows, biases and outgoing columns (in place)."""
    _check_keep(model, keep)
    lins = _linears(model)
    with torch.no_grad():
        for li, lin in enumerate(lins):
            if li < len(keep):
                lin.weight[~keep[li]] = 0.0
                if lin.bias is not None:
                    lin.bias[~keep[li]] = 0.0
            if li > 0:
                lin.weight[:, ~keep[li - 1]] = 0.0


class GroupLasso(Callback):
    """Adds ``weight * sum_l sum_j ||W_l[j, :]||_2`` over the hidden layers' neurons to the loss:
    the group lasso drives whole incoming rows (neurons) to zero, ready for :func:`neuron_masks`.

    Raises:
        ConfigError: ``weight`` is negative or not finite.
    """

    def __init__(self, weight: float):
        if not (0.0 <= float(weight) < float("inf")):
            raise ConfigError(f"group-lasso weight must be finite and >= 0, got {weight!r}")
        self.weight = float(weight)

    def loss(self, model, loss, inputs, targets):
        if self.weight == 0.0:
            return loss
        rows = [lin.weight.norm(dim=1).sum() for lin in _linears(model)[:-1]]
        return loss + self.weight * sum(rows)


class ZeroNeurons(Callback):
    """Keeps dropped neurons (weights and biases) at zero during :func:`quant.trainer.fit`."""

    def __init__(self, keep: list[torch.Tensor]):
        self.keep = keep

    def on_train_begin(self, model: nn.Module) -> None:
        zero_neurons(model, self.keep)

    def after_step(self, model: nn.Module, step: int) -> None:
        zero_neurons(model, self.keep)


def _check_keep(model: FullyConLike, keep: list[torch.Tensor]) -> None:
    lins = _linears(model)
    if len(keep) != len(lins) - 1:
        raise ConfigError(f"{len(keep)} neuron masks for {len(lins) - 1} hidden layers")
    for li, mask in enumerate(keep):
        if mask.numel() != lins[li].out_features or not bool(mask.any()):
            raise ConfigError(
                f"hidden layer {li}: mask of {mask.numel()} with {int(mask.sum())} kept, layer "
                f"has {lins[li].out_features} neurons (at least one must stay)"
            )


def shrink(model: FullyConLike, keep: list[torch.Tensor]) -> FullyConLike:
    """The physically smaller FullyCon without the dropped neurons (float or QAT, as given).

    Its outputs equal those of ``model`` after :func:`zero_neurons` (a dropped neuron outputs
    zero, so leaving its column out of the next layer changes no sum; QAT models agree bit for
    bit, float ones up to float32 summation order). Quantizer state (activation scales) is
    copied unchanged; per-channel weight scales are recomputed from the kept rows, i.e. equal.
    """
    _check_keep(model, keep)
    shape = FullyConWidths(model.shape.n_rx, model.shape.k_tx, tuple(int(m.sum()) for m in keep))
    small: FullyConLike = (
        QuantFullyCon(model.recipe, shape) if isinstance(model, QuantFullyCon) else FullyCon(shape)
    )
    names = _linear_names(model)
    state = {}
    for key, value in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in names and leaf in ("weight", "bias"):
            li = names.index(prefix)
            if li < len(keep):
                value = value[keep[li]]
            if li > 0 and leaf == "weight":
                value = value[:, keep[li - 1]]
        state[key] = value.clone()
    small.load_state_dict(state)
    small.eval()
    return small
