"""Green DetNet on the varying (i.i.d.) channel, with the removed parts physically gone.

The compression acts on the float :class:`.detnet.DetNet` (trained by :mod:`.detnet_train`) and
is carried into the hardware form :class:`.detnet_iid_hw.QuantDetNetIID`:

* R-DetNet(GL): :class:`HiddenUnitLasso` with ``l1 = 0`` adds ``gl * sum ||g_j||_2`` over the
  hidden units, a group ``g_j`` holding everything of unit j of a layer: its ``fc`` row and bias
  (its input side) and its ``out_x`` / ``out_v`` columns (its output side; in the hardware form
  ``fc_r``'s and ``fc_v``'s columns). A zero group is a unit that can go.
* R-DetNet(SGL): the same with ``l1 > 0`` (sparse group lasso, ``+ l1 * sum |w|``).
* The width of v, optionally (``v_groups``): one group per entry j of v, shared by all layers
  (every layer's ``out_v`` row j and bias, every later layer's ``fc`` column reading v_j; in
  the hardware form also ``mix_v``'s row and columns j). Since ``v_0 = 0`` and
  ``v_l = 0.1 vn_l + 0.9 v_{l-1}`` mixes entry by entry, a zero group keeps v_j = 0 in every
  layer, and v_j goes: each layer's two 8-bit thresholding layers on v shrink with it.
* R-I-DetNet: :func:`truncate` keeps the first ``L'`` layers (DetNet's loss trains every
  layer's estimate, so they already detect), fine-tuned on ``L'`` layers, then pruned the same
  way: a whole layer removes its MVAUs and, above all, its 8-bit thresholding layers.

:func:`unit_masks` ranks the units by group norm, :class:`ZeroUnits` holds the dropped ones at
zero during the fine-tune, :func:`to_quant` copies the float model into the hardware form and
:func:`shrink` builds the physically smaller one (per-layer hidden widths), which computes the
same function as the model with the units zeroed (a zero unit is ReLU(0) = 0, so leaving its
column out of ``fc_r``/``fc_v`` changes no sum). FINN then builds smaller MVAUs.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from models.detector.detnet import DetNet
from models.detector.detnet_iid_hw import (  # noqa: F401 (qat, freeze_mixes, symmetric_mix_bias: re-exported)
    MIX_LAYERS,
    QuantDetNetIID,
    batches,
    freeze_mixes,
    from_float,
    qat,
    symmetric_mix_bias,
)
from qphy.errors import ConfigError
from quant.recipes import Recipe
from quant.trainer import Callback, FitResult, fit

Model = DetNet | QuantDetNetIID


def _unit_parts(layer: nn.Module) -> tuple[nn.Linear, list[nn.Linear]]:
    """``(fc, [the layers reading fc's units])`` of a float or hardware-form layer."""
    if hasattr(layer, "out_x"):  # float DetNetLayer
        return layer.fc, [layer.out_x, layer.out_v]
    outs = [layer.fc_r] + ([layer.fc_v] if hasattr(layer, "fc_v") else [])
    return layer.fc, outs


def _layers(model: Model) -> list[nn.Module]:
    if not isinstance(model, DetNet | QuantDetNetIID):
        raise ConfigError(f"Green DetNet (iid) needs a DetNet, got {type(model).__name__}")
    return list(model.layers)


def _v_slices(model: Model) -> list[tuple[torch.Tensor, int, int]]:
    """Every ``(tensor, dim, offset)`` whose index ``offset + j`` along ``dim`` belongs to v_j."""
    k = model.shape.k_tx
    out = []
    for layer in _layers(model):
        if hasattr(layer, "out_v"):  # float DetNetLayer
            out += [(layer.out_v.weight, 0, 0), (layer.out_v.bias, 0, 0)]
            if layer is not model.layers[0]:
                out.append((layer.fc.weight, 1, 3 * k))
            continue
        if not layer.first:
            out.append((layer.fc.weight, 1, 3 * k))
        if not layer.last:
            out += [(layer.fc_v.weight, 0, 0), (layer.fc_v.bias, 0, 0)]
        if hasattr(layer, "mix_v"):
            vd = layer.mix_v.out_features
            w = layer.mix_v.weight
            out += [(w, 0, 0), (layer.mix_v.bias, 0, 0), (w, 1, 0), (w, 1, vd)]
    return out


def _v_dim(model: Model) -> int:
    return model.shape.v_dim if isinstance(model, DetNet) else model.v_dim


def v_norms(model: Model) -> torch.Tensor:
    """L2 norm of every entry of v's group (over all layers), shape (v_dim,)."""
    vd = _v_dim(model)
    sq = 0.0
    for t, dim, off in _v_slices(model):
        part = t.narrow(dim, off, vd).pow(2)
        sq = sq + (part.movedim(dim, 0).reshape(vd, -1).sum(dim=1))
    return torch.sqrt(sq + 1e-12)


def _scale_v(model: Model, scale: torch.Tensor) -> None:
    """Multiplies every part of v_j's group by ``scale[j]`` (in place)."""
    vd = _v_dim(model)
    for t, dim, off in _v_slices(model):
        shape = [1] * t.dim()
        shape[dim] = vd
        t.narrow(dim, off, vd).mul_(scale.reshape(shape))


def unit_norms(model: Model) -> list[torch.Tensor]:
    """L2 norm of every hidden unit's group (fc row and bias, outgoing columns), per layer."""
    norms = []
    for layer in _layers(model):
        fc, outs = _unit_parts(layer)
        sq = fc.weight.pow(2).sum(dim=1) + fc.bias.pow(2)
        for lin in outs:
            sq = sq + lin.weight.pow(2).sum(dim=0)
        norms.append(torch.sqrt(sq + 1e-12))
    return norms


class HiddenUnitLasso(Callback):
    """R-DetNet(GL) (``l1 = 0``) or R-DetNet(SGL): the penalty ``gl * sum_units ||g_j||_2 +
    l1 * sum |w|`` over the unit groups' weights.

    With ``prox_lr = 0`` the penalty is added to the loss (its subgradient then competes with
    the data's inside Adam, which shrinks groups but rarely to exactly zero). With
    ``prox_lr > 0`` it is applied as the proximal step of the penalty after every optimizer
    step instead: each weight soft-thresholded by ``prox_lr * l1``, then each group scaled by
    ``max(0, 1 - prox_lr * gl / ||g_j||)``, which sets weak groups exactly to zero.

    Raises:
        ConfigError: A weight negative or not finite.
    """

    def __init__(self, gl: float, l1: float = 0.0, prox_lr: float = 0.0, v_groups: bool = False):
        for name, v in (("gl", gl), ("l1", l1), ("prox_lr", prox_lr)):
            if not 0.0 <= float(v) < math.inf:
                raise ConfigError(f"hidden-unit lasso {name} must be finite and >= 0, got {v!r}")
        self.gl, self.l1, self.prox_lr = float(gl), float(l1), float(prox_lr)
        self.v_groups = bool(v_groups)

    def loss(self, model, loss, inputs, targets):
        if self.prox_lr:
            return loss
        if self.gl:
            loss = loss + self.gl * sum(n.sum() for n in unit_norms(model))
            if self.v_groups:
                loss = loss + self.gl * v_norms(model).sum()
        if self.l1:
            for layer in _layers(model):
                fc, outs = _unit_parts(layer)
                loss = loss + self.l1 * sum(m.weight.abs().sum() for m in [fc, *outs])
        return loss

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if not self.prox_lr:
            return
        t1, tg = self.prox_lr * self.l1, self.prox_lr * self.gl
        for layer in _layers(model):
            fc, outs = _unit_parts(layer)
            if t1:
                for m in [fc, *outs]:
                    m.weight.copy_(torch.sign(m.weight) * (m.weight.abs() - t1).clamp_min(0))
        if not tg:
            return
        for layer, norm in zip(_layers(model), unit_norms(model), strict=True):
            fc, outs = _unit_parts(layer)
            scale = (1.0 - tg / norm).clamp_min(0.0)
            fc.weight.mul_(scale[:, None])
            fc.bias.mul_(scale)
            for m in outs:
                m.weight.mul_(scale[None, :])
        if self.v_groups:
            _scale_v(model, (1.0 - tg / v_norms(model)).clamp_min(0.0))


def _keep_strongest(norm: torch.Tensor, beta: float, fraction: float, multiple_of: int):
    """Mask of the units kept: those ``>= beta`` times the strongest, and at most
    ``n - floor(fraction * n)`` of them; the count rounded up to a multiple of
    ``multiple_of`` by the next strongest (ties keep the lower index)."""
    if not 0.0 <= float(beta) < 1.0:
        raise ConfigError(f"beta must lie in [0, 1), got {beta!r}")
    if not 0.0 <= float(fraction) < 1.0:
        raise ConfigError(f"prune fraction must lie in [0, 1), got {fraction!r}")
    if multiple_of < 1:
        raise ConfigError(f"multiple_of must be >= 1, got {multiple_of}")
    n = norm.numel()
    keep = min(int((norm >= beta * norm.max()).sum()), n - int(fraction * n))
    keep = min(n, -(-max(keep, 1) // multiple_of) * multiple_of)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.sort(-norm, stable=True).indices[:keep]] = True
    return mask


def unit_masks(
    model: Model, beta: float, multiple_of: int = 1, fraction: float = 0.0
) -> list[torch.Tensor]:
    """Keep-masks over every layer's hidden units: a unit stays when its group norm is
    ``>= beta`` times the layer's largest and it is among the strongest ``1 - fraction``, the
    count rounded up to a multiple of ``multiple_of`` (FINN's PE must divide a layer's width)
    by the next strongest units.

    Raises:
        ConfigError: ``beta`` or ``fraction`` outside [0, 1) or ``multiple_of`` < 1.
    """
    with torch.no_grad():
        return [_keep_strongest(n, beta, fraction, multiple_of) for n in unit_norms(model)]


def v_mask(model: Model, beta: float, multiple_of: int = 1, fraction: float = 0.0) -> torch.Tensor:
    """Keep-mask over v's entries, chosen like :func:`unit_masks` by :func:`v_norms`."""
    with torch.no_grad():
        return _keep_strongest(v_norms(model), beta, fraction, multiple_of)


def _check_keep(model: Model, keep: list[torch.Tensor]) -> None:
    layers = _layers(model)
    if len(keep) != len(layers):
        raise ConfigError(f"{len(keep)} unit masks for {len(layers)} layers")
    for i, (layer, mask) in enumerate(zip(layers, keep, strict=True)):
        if mask.numel() != layer.fc.out_features or not bool(mask.any()):
            raise ConfigError(
                f"layer {i}: mask of {mask.numel()} with {int(mask.sum())} kept, the layer has "
                f"{layer.fc.out_features} units (at least one must stay)"
            )


def _check_v(model: Model, v_keep: torch.Tensor | None) -> None:
    if v_keep is not None and (v_keep.numel() != _v_dim(model) or not bool(v_keep.any())):
        raise ConfigError(f"v mask of {v_keep.numel()} for v of {_v_dim(model)} (keep >= 1)")


@torch.no_grad()
def zero_units(model: Model, keep: list[torch.Tensor], v_keep: torch.Tensor | None = None) -> None:
    """Zero the dropped units' fc rows and biases and their outgoing columns, and every part of
    the dropped entries of v (in place)."""
    _check_keep(model, keep)
    _check_v(model, v_keep)
    for layer, mask in zip(_layers(model), keep, strict=True):
        fc, outs = _unit_parts(layer)
        fc.weight[~mask] = 0.0
        fc.bias[~mask] = 0.0
        for lin in outs:
            lin.weight[:, ~mask] = 0.0
    if v_keep is not None:
        _scale_v(model, v_keep.to(torch.float32))


class ZeroUnits(Callback):
    """Holds the dropped units (and entries of v) at zero during :func:`quant.trainer.fit`."""

    def __init__(self, keep: list[torch.Tensor], v_keep: torch.Tensor | None = None):
        self.keep, self.v_keep = keep, v_keep

    def on_train_begin(self, model: nn.Module) -> None:
        zero_units(model, self.keep, self.v_keep)

    def after_step(self, model: nn.Module, step: int) -> None:
        zero_units(model, self.keep, self.v_keep)


def truncate(model: DetNet, n_layers: int) -> DetNet:
    """A new float DetNet of the first ``n_layers`` layers of ``model`` (R-I-DetNet's depth).

    Raises:
        ConfigError: ``n_layers`` outside 1..L.
    """
    if not 1 <= n_layers <= model.shape.n_layers:
        raise ConfigError(f"cannot keep {n_layers} of {model.shape.n_layers} layers")
    small = DetNet(replace(model.shape, n_layers=n_layers))
    small.layers.load_state_dict(model.layers[:n_layers].state_dict())
    return small.eval()


def remix(model: DetNet, mix: float) -> DetNet:
    """A new float DetNet with ``model``'s weights and the mix ``x_l = mix new + (1 - mix)
    old`` (of x and v). 0.125 or 0.25 are exact in the hardware form's 4-bit mix layers after
    the first (``2 mix`` and ``1 - mix`` are multiples of 1/8); DetNet's 0.1 is not (0.2 ->
    0.25). Layer 1's ``mix_x`` (one weight ``2 mix`` per row) gets its own power-of-two scale,
    which clips 0.5 to 7/16.

    Raises:
        ConfigError: ``mix`` outside (0, 1].
    """
    new = DetNet(replace(model.shape, mix=float(mix)))
    new.load_state_dict(model.state_dict())
    return new.eval()


def finetune(
    det: DetNet,
    cfg,
    steps: int,
    seed: int,
    teacher: DetNet | None = None,
    kd: float = 0.0,
    callbacks: tuple[Callback, ...] = (),
    description: str = "finetune",
) -> FitResult:
    """Float training of ``det`` in place (:func:`.detnet_train.train_detnet`'s Adam and LR
    decay, ``cfg`` a :class:`.detnet_train.DetNetTrainConfig`) with DetNet's loss plus, with
    ``kd > 0``, the distillation term ``kd * mean ||x_T - x_L||^2 / ||x - x_LS||^2``: the
    student's last estimate against the (deeper) ``teacher``'s last one on the same batch.

    Raises:
        ConfigError: ``kd`` negative or not finite, or ``kd > 0`` without a teacher.
    """
    from models.detector.detnet import detnet_loss
    from models.detector.detnet_train import _optimizer, make_batches

    if not 0.0 <= float(kd) < math.inf:
        raise ConfigError(f"distillation weight kd must be finite and >= 0, got {kd!r}")
    if kd and teacher is None:
        raise ConfigError("distillation (kd > 0) needs a teacher DetNet")
    draw = make_batches(cfg, torch.Generator().manual_seed(seed))
    if teacher is not None:
        teacher.eval()

    def batch():
        inputs, (x, x_ls) = draw()
        if not kd:
            return inputs, (x, x_ls, None)
        with torch.no_grad():
            return inputs, (x, x_ls, teacher(inputs)[-1])

    def loss(outputs, targets):
        x, x_ls, x_t = targets
        val = detnet_loss(outputs, x, x_ls)
        if x_t is None:
            return val
        ref = ((x - x_ls) ** 2).sum(dim=-1)
        return val + kd * (((x_t - outputs[-1]) ** 2).sum(dim=-1) / ref).mean()

    opt, sched = _optimizer([p for p in det.parameters() if p.requires_grad], cfg)
    return fit(
        det,
        batch,
        loss,
        opt,
        steps=steps,
        scheduler=sched,
        callbacks=callbacks,
        description=description,
    )


def shrink(
    model: QuantDetNetIID, keep: list[torch.Tensor], v_keep: torch.Tensor | None = None
) -> QuantDetNetIID:
    """The physically smaller hardware form without the dropped units (per-layer widths) and
    entries of v.

    Its outputs equal those of ``model`` after :func:`zero_units` bit for bit: the kept units'
    weights and every quantizer's state are copied unchanged, a per-channel weight scale of
    ``fc`` belongs to a kept row, and those of ``fc_r``/``fc_v`` (per output row) or a
    per-tensor one only lose zero entries from their maximum.
    """
    _check_keep(model, keep)
    _check_v(model, v_keep)
    vk = torch.ones(model.v_dim, dtype=torch.bool) if v_keep is None else v_keep
    widths = tuple(int(m.sum()) for m in keep)
    small = QuantDetNetIID(
        model.recipe, model.shape, model.state_bits, hidden=widths, v_dim=int(vk.sum())
    )
    fc_in = torch.cat([torch.ones(3 * model.shape.k_tx, dtype=torch.bool), vk])
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "layers" and parts[-1] in ("weight", "bias"):
            li, lin, w = int(parts[1]), parts[2], parts[-1] == "weight"
            mask = keep[li]
            if lin == "fc":
                value = value[mask]
                if w and not model.layers[li].first:  # a later layer's fc reads v
                    value = value[:, fc_in]
            elif lin == "fc_r" and w:
                value = value[:, mask]
            elif lin == "fc_v":
                value = value[vk][:, mask] if w else value[vk]
            elif lin == "mix_v":
                value = value[vk][:, torch.cat([vk, vk])] if w else value[vk]
        state[key] = value.clone()
    # Brevitas adds an activation scale learned from runtime statistics to the state only once
    # it has been collected (the first training steps): a model not yet trained lacks it, and
    # so may the copy; everything the source has must fit.
    res = small.load_state_dict(state, strict=False)
    if res.unexpected_keys or any(not k.endswith("scaling_impl.value") for k in res.missing_keys):
        raise ConfigError(f"shrink: state does not fit the pruned model: {res}")
    return small.eval()


def to_quant(
    det: DetNet,
    recipe: Recipe,
    keep: list[torch.Tensor] | None = None,
    v_keep: torch.Tensor | None = None,
    **kwargs,
) -> QuantDetNetIID:
    """The hardware form of a float DetNet (:func:`.detnet_iid_hw.from_float`), physically
    without the units ``keep`` drops and the entries of v ``v_keep`` drops (``None``: all)."""
    model = QuantDetNetIID(recipe, det.shape, **kwargs)
    from_float(model, det)
    if keep is None and v_keep is None:
        return model.eval()
    keep = keep or [torch.ones(lay.fc.out_features, dtype=torch.bool) for lay in model.layers]
    zero_units(model, keep, v_keep)
    return shrink(model, keep, v_keep)
