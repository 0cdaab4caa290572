"""DetNet on a varying (i.i.d.) channel in its hardware form: a Brevitas model whose ONE input
stream carries, per received vector, ``u = [H^T y | c vec(H^T H)]`` (K + K^2 values; the
constant ``c = GRAM_SCALE`` gives H^T H a finer step under the input's one scale).

Why one stream: qphy's stitcher handles several top-level streams, but the host runtime, the
harness and the board driver take one input stream (docs/rtl-layers.md). So the host computes
``H^T y`` and ``H^T H`` in numpy (:func:`host_inputs`), concatenates them, and the model splits
them again (a slice of the input; on chip the split layer).

The tensors between layers share two quantizers (one scale each), so every concat joins
streams of one scale, as qphy's RTL concat needs: ``state`` (signed, learned range initialised
to +-4: ``H^T y``, ``x``, ``H^T H x``, ``v``) and ``pos`` (unsigned, the constant range
[0, 1): the soft sign's clamp and ``x`` as the pair ``x+ = ReLU(x)``, ``x- = ReLU(-x)``; FINN
turns a ReLU only into an unsigned quantizer, so these cannot feed the signed ``state``).
Layer l (``x_0 = v_0 = 0``; layer 1 reads only ``q``)::

    gx  = state(G' x_{l-1} / c)            dynamic matmul (MVAU, mem_mode dynamic), G' = c G
    c   = [q, x_{l-1}, gx, v_{l-1}]                     concat, 5K
    z   = ReLU_q(fc(c))                                 5K -> 8K
    r   = pos(fc_r(z))             8K -> K: clamp((a + |t|) / (2|t|), 0, 1), a = W2 z + b2
    m   = [r, x_{l-1}+, x_{l-1}-]                       concat, 3K
    x_l = state(mix_x(m));  [x_l+, x_l-] = pos(mix_p(m))   3K -> K, 3K -> 2K
    vn  = state(fc_v(z));   v_l = state(mix_v([vn, v_{l-1}]))   init [0.1 I, 0.9 I]

The soft sign ``psi_t(a) = -1 + (ReLU(a + t) - ReLU(a - t)) / |t| = -1 + 2 sign(t) r`` is the
saturation of ``pos`` (its range [0, 1) is the clamp; two ReLU halves would need a range as
wide as ``a`` itself, and clipping both at one range maps a large ``a`` to -1). It and
DetNet's ``0.1 new + 0.9 old`` mix are thereby the linear layer ``mix_x`` over the concat
``m`` (initialised to ``[0.2 sign(t), 0.9, -0.9]``, bias -0.1; ``mix_p`` to
``[mix_x; -mix_x]``) and trained with the rest in QAT: a scaled add of streams, requantized
by thresholds. The last
layer computes no ``v`` and no pair, and its ``x_L`` goes through the output quantizer.

:func:`from_float` initialises the model from a trained float :class:`.detnet.DetNet`;
:func:`train_qat` fine-tunes it through :func:`quant.trainer.fit` with DetNet's loss.
"""

from __future__ import annotations

import numpy as np
import torch
from brevitas.inject.enum import ScalingImplType
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPointMinMaxInit,
    Uint8ActPerTensorFixedPointMaxInit,
)
from torch import nn

from models.detector.detnet import DetNet, DetNetShape, gram, least_squares
from qphy.errors import CheckpointError, ConfigError
from quant.recipes import Recipe
from quant.trainer import Callback, FitResult, fit

#: Width of the shared state quantizer (H^T y, x, H^T H x, v) and of ``pos``.
STATE_BITS = 8
#: Initial range +-STATE_RANGE of ``state`` (then learned): it must hold H^T y (|.| up to
#: ~4.3 at 8..13 dB); a range from percentile statistics (~2, most values are x in [-1, 1])
#: clipped H^T y and H^T H x and cost most of the quantized model's BER (docs/detnet-iid.md).
STATE_RANGE = 4.0
#: The host sends ``GRAM_SCALE * H^T H`` and the model divides ``G x`` by it again (a scalar
#: past the dynamic MVAU, absorbed by streamlining): the input quantizer's one scale fits
#: H^T y (|.| ~4.3), so this gives H^T H (diagonal ~1 +- 0.26, off-diagonal ~0.18) a
#: GRAM_SCALE times finer step. A power of two: the product stays exact.
GRAM_SCALE = 2.0
#: Initial range +-INPUT_RANGE of the 8-bit input quantizer (then learned): H^T y and
#: GRAM_SCALE H^T H stay within ~4.3; a percentile range rounds up to the next power of two, 8.
INPUT_RANGE = 4.0


class StateQuant(Int8ActPerTensorFixedPointMinMaxInit):
    """Signed PoT quantizer of the inter-layer state, learned scale initialised to cover
    +-:data:`STATE_RANGE`."""

    max_val = STATE_RANGE
    min_val = -STATE_RANGE


class InputQuant(Int8ActPerTensorFixedPointMinMaxInit):
    """The input's signed PoT quantizer, learned scale initialised to +-:data:`INPUT_RANGE`."""

    max_val = INPUT_RANGE
    min_val = -INPUT_RANGE


class UnitQuant(Uint8ActPerTensorFixedPointMaxInit):
    """Unsigned quantizer with the constant range [0, 1) (scale 2^-bits for bits >= 8): the
    soft sign's clamp (its saturation) and the pair ``x+``, ``x-`` of ``x`` in [-1, 1]."""

    scaling_impl_type = ScalingImplType.CONST
    max_val = 1.0 - 2.0**-8


def host_inputs(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The host's per-vector input ``[H^T y | GRAM_SCALE vec(H^T H)]`` (float32, (B, K + K^2)).

    Args:
        y: Received vectors (B, N).
        h: Channels (B, N, K), or one (N, K) shared by the batch.
    """
    y = np.asarray(y, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    if h.ndim == 2:
        h = np.broadcast_to(h, (y.shape[0], *h.shape))
    if y.ndim != 2 or h.ndim != 3 or h.shape[:2] != y.shape:
        raise ConfigError(f"host_inputs: y {y.shape} and H {h.shape} do not fit (B, N), (B, N, K)")
    hty = np.einsum("bnk,bn->bk", h, y)
    hth = GRAM_SCALE * np.einsum("bnk,bnj->bkj", h, h)
    return np.concatenate([hty, hth.reshape(len(y), -1)], axis=1).astype(np.float32)


class _Layer(nn.Module):
    """One unrolled layer of :class:`QuantDetNetIID` (see the module docstring)."""

    def __init__(
        self,
        recipe: Recipe,
        shape: DetNetShape,
        first: bool,
        last: bool,
        hidden: int | None = None,
        v_dim: int | None = None,
    ):
        super().__init__()
        # ``hidden``: this layer's ReLU width (fc's outputs), ``v_dim``: the width of v; a
        # pruned model's (models/detector/green_iid.py) are below 8K and 2K.
        k = shape.k_tx
        vd = shape.v_dim if v_dim is None else v_dim
        hd = shape.hidden if hidden is None else hidden
        self.first, self.last = first, last
        qlin = {**recipe.weight(), **recipe.bias()}
        self.fc = QuantLinear(k if first else 3 * k + vd, hd, bias=True, **qlin)
        self.relu = QuantReLU(return_quant_tensor=True, **recipe.relu())
        self.fc_r = QuantLinear(hd, k, bias=True, **qlin)
        mix_in = k if first else 3 * k
        self.mix_x = QuantLinear(mix_in, k, bias=True, **qlin)
        if not last:
            self.mix_p = QuantLinear(mix_in, 2 * k, bias=True, **qlin)
            self.fc_v = QuantLinear(hd, vd, bias=True, **qlin)
            if not first:
                self.mix_v = QuantLinear(2 * vd, vd, bias=True, **qlin)

    def forward(self, q_: _Quantizers, q, g, x, xp, v):
        """``(x_l, [x_l+, x_l-], v_l)`` from ``x_{l-1}``, its pair ``xp`` and ``v_{l-1}``."""
        k = q.shape[-1]
        if self.first:
            c = q
        else:
            # G is symmetric: x^T G = (G x)^T; the matmul of two run-time values.
            gx = torch.matmul(x.value.view(-1, 1, k), g).view(-1, k)
            gx = q_.state(gx * (1.0 / GRAM_SCALE))  # a Mul: streamlining absorbs it
            c = torch.cat([q, x, gx, v], dim=1)
        z = self.relu(self.fc(c))
        r = q_.pos(self.fc_r(z))
        m = r if self.first else torch.cat([r, xp], dim=1)
        x_new = (q_.out if self.last else q_.state)(self.mix_x(m))
        if self.last:
            return x_new, None, None
        vn = q_.state(self.fc_v(z))
        v_new = vn if self.first else q_.state(self.mix_v(torch.cat([vn, v], dim=1)))
        return x_new, q_.pos(self.mix_p(m)), v_new


class _Quantizers(nn.Module):
    """The quantizers shared by all layers: ``state`` (signed) for the concat's inputs and the
    ``v`` mix, ``pos`` (unsigned, [0, 1), a ReLU) for the soft sign's clamp and the ``x`` pairs
    that the mix layers read, ``out`` for ``x_L``."""

    def __init__(self, recipe: Recipe, state_bits: int):
        super().__init__()
        self.state = QuantIdentity(
            return_quant_tensor=True, act_quant=StateQuant, bit_width=state_bits
        )
        self.pos = QuantReLU(return_quant_tensor=True, act_quant=UnitQuant, bit_width=state_bits)
        self.out = QuantIdentity(return_quant_tensor=False, **recipe.output())


class QuantDetNetIID(nn.Module):
    """The varying-channel DetNet's hardware form: input :func:`host_inputs` (B, K + K^2),
    output ``x_L`` (B, K); in train mode the stacked ``x_1 .. x_L`` (L, B, K) for the loss.

    ``hidden`` gives each layer's ReLU width (default: ``shape.hidden`` everywhere) and ``v_dim``
    the width of v (default: ``shape.v_dim``); the Green DetNet's pruned models
    (:mod:`.green_iid`) are built with fewer units, so FINN builds smaller layers.
    """

    #: Forks and joins: the export pairs its quantizers by value (quant.export).
    qphy_branched = True

    def __init__(
        self,
        recipe: Recipe,
        shape: DetNetShape,
        state_bits: int = STATE_BITS,
        hidden: tuple[int, ...] | None = None,
        v_dim: int | None = None,
    ):
        super().__init__()
        n = shape.n_layers
        hidden = (shape.hidden,) * n if hidden is None else tuple(int(h) for h in hidden)
        if len(hidden) != n or min(hidden) < 1:
            raise ConfigError(f"hidden widths {hidden}: need {n} widths, each >= 1")
        v_dim = shape.v_dim if v_dim is None else int(v_dim)
        if v_dim < 1:
            raise ConfigError(f"v_dim must be >= 1, got {v_dim}")
        self.recipe, self.shape, self.state_bits, self.hidden = recipe, shape, state_bits, hidden
        self.v_dim = v_dim
        self.inp = QuantIdentity(
            return_quant_tensor=True, **{**recipe.input(), "act_quant": InputQuant}
        )
        self.quant = _Quantizers(recipe, state_bits)
        self.layers = nn.ModuleList(
            _Layer(recipe, shape, i == 0, i == n - 1, hidden[i], v_dim) for i in range(n)
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        k = self.shape.k_tx
        uq = self.inp(u)
        # torch.split exports as an ONNX Split: on chip qphy's split layer (a Slice has none).
        # K + 1 equal chunks, the K rows of G concatenated again: FINN's FIFO insertion takes
        # the folded shape of a multi-output layer's FIRST output for all of them, so a split
        # into outputs of different sizes (K and K^2) cannot be stitched.
        q_in, *rows = torch.split(uq.value, k, dim=1)
        q = self.quant.state(q_in)
        g = torch.cat(rows, dim=1).reshape(-1, k, k)
        x = xp = v = None
        outs = []
        for layer in self.layers:
            x, xp, v = layer(self.quant, q, g, x, xp, v)
            outs.append(getattr(x, "value", x))
        return torch.stack(outs) if self.training else outs[-1]

    def linears(self) -> list[QuantLinear]:
        return [m for m in self.modules() if isinstance(m, QuantLinear)]


@torch.no_grad()
def from_float(model: QuantDetNetIID, det: DetNet) -> None:
    """Copies a trained float DetNet of the same shape into ``model`` (see module docstring).

    Raises:
        CheckpointError: The shapes differ.
    """
    if det.shape != model.shape:
        raise CheckpointError(f"float DetNet {det.shape} does not fit the QAT model {model.shape}")
    k, vd, mix = det.shape.k_tx, det.shape.v_dim, float(det.shape.mix)
    eye_k, eye_v = torch.eye(k), torch.eye(vd)
    for ql, fl in zip(model.layers, det.layers, strict=True):
        w1, b1 = fl.fc.weight, fl.fc.bias
        ql.fc.weight.copy_(w1[:, :k] if ql.first else w1)
        ql.fc.bias.copy_(b1)
        # psi_t(a) = -1 + sign(t) 2 r with r = clamp((a + |t|) / (2|t|), 0, 1): r is fc_r's
        # output through ``pos``, whose saturation at 1 is the clamp.
        t = fl.t.detach()
        at = t.abs()
        ql.fc_r.weight.copy_(fl.out_x.weight / (2 * at))
        ql.fc_r.bias.copy_((fl.out_x.bias + at) / (2 * at))
        m_r = (2 * mix * torch.sign(t)) * eye_k
        m_x = m_r if ql.first else torch.cat([m_r, (1 - mix) * eye_k, -(1 - mix) * eye_k], 1)
        ql.mix_x.weight.copy_(m_x)
        ql.mix_x.bias.fill_(-mix)
        if not ql.last:  # the pair [x_l, -x_l] through the ReLU: x_l = x_l+ - x_l-
            ql.mix_p.weight.copy_(torch.cat([m_x, -m_x]))
            ql.mix_p.bias.copy_(torch.cat([torch.full((k,), -mix), torch.full((k,), mix)]))
        if ql.last:
            continue
        if ql.first:  # v_1 = mix * v_new: the mix folds into fc_v
            ql.fc_v.weight.copy_(mix * fl.out_v.weight)
            ql.fc_v.bias.copy_(mix * fl.out_v.bias)
        else:
            ql.fc_v.weight.copy_(fl.out_v.weight)
            ql.fc_v.bias.copy_(fl.out_v.bias)
            ql.mix_v.weight.copy_(torch.cat([mix * eye_v, (1 - mix) * eye_v], dim=1))
            ql.mix_v.bias.zero_()


def batches(det_cfg, batch: int, snr_lo: float, snr_hi: float, gen: torch.Generator):
    """Fresh i.i.d.-channel batches ``(u, (x, x_LS))`` for :func:`quant.trainer.fit`."""
    from models.detector.mimo import sample_batch, uniform_snr_db

    def draw():
        snr = uniform_snr_db(batch, snr_lo, snr_hi, gen)
        y, x, h, _ = sample_batch(det_cfg, batch, snr, gen)
        hty, hth = gram(y, h)
        u = torch.cat([hty, GRAM_SCALE * hth.reshape(batch, -1)], dim=1).float()
        return u, (x, least_squares(y, h))

    return draw


#: The hardware form's mix layers (DetNet's fixed 0.1/0.9 mix of the new and the old estimate).
MIX_LAYERS = ("mix_x", "mix_p", "mix_v")


def freeze_mixes(model: QuantDetNetIID) -> int:
    """Stops training the mix layers of ``model`` (``requires_grad = False`` on their weights
    and biases; their quantizers have no learned state); returns the number of tensors frozen.

    Why (measured, docs/detnet-iid.md "Green DetNet"): with the mixes trained, the QAT of the
    6-layer R-I-DetNet lowered the loss while its BER at 12 dB rose from 1.2e-2 (200 steps) to
    3.5e-2 (800 steps); with them frozen it fell to 9.5e-3.

    Raises:
        ConfigError: Not the hardware form.
    """
    if not isinstance(model, QuantDetNetIID):
        raise ConfigError(f"freeze_mixes needs a QuantDetNetIID, got {type(model).__name__}")
    n = 0
    for layer in model.layers:
        for name in MIX_LAYERS:
            if hasattr(layer, name):
                for p in getattr(layer, name).parameters():
                    p.requires_grad_(False)
                    n += 1
    return n


@torch.no_grad()
def symmetric_mix_bias(model: QuantDetNetIID, mix: float) -> list[float]:
    """Sets the mix layers' biases to fit their *quantized* weights (in place); returns each
    layer's new ``mix_x`` bias (its first entry).

    :func:`.detnet_iid_hw.from_float` sets ``x_l = w r + b`` with ``w = 2 mix sign(t)``,
    ``b = -mix`` (``0.1 psi + 0.9 x``, ``psi = 2 r - 1``), but 4-bit weights round ``w``: 0.2
    becomes 0.25, and ``0.25 r - 0.1 = 0.125 psi + 0.025`` adds +0.025 in every layer (the
    estimate drifts towards +1). With ``b = -mix w_q / w`` the quantized mix is the symmetric
    ``(w_q / 2) psi`` again (0.125 psi + 0.875 x); ``mix_p``'s halves get ``b`` and ``-b``.
    Meant for a QAT with the mixes frozen (:func:`freeze_mixes`), where nothing else would
    correct the offset.

    Raises:
        ConfigError: Not the hardware form.
    """
    if not isinstance(model, QuantDetNetIID):
        raise ConfigError(f"symmetric_mix_bias needs a QuantDetNetIID, got {type(model).__name__}")
    k = model.shape.k_tx
    out = []
    for layer in model.layers:
        w = torch.diagonal(layer.mix_x.weight[:, :k])
        wq = torch.diagonal(layer.mix_x.quant_weight().value[:, :k])
        b = -float(mix) * wq / w
        layer.mix_x.bias.copy_(b)
        if hasattr(layer, "mix_p"):
            layer.mix_p.bias.copy_(torch.cat([b, -b]))
        out.append(float(b[0]))
    return out


def qat(
    model: QuantDetNetIID,
    cfg,
    steps: int,
    lr: float,
    seed: int,
    callbacks: tuple[Callback, ...] = (),
    freeze_mix: bool = False,
    description: str | None = None,
) -> FitResult:
    """QAT of the hardware form (any widths) with DetNet's loss on fresh i.i.d. batches, Adam
    with the LR halved at 60 % and 85 % of the steps (:func:`.detnet_iid.train_qat`'s, and the
    Green DetNet rows').

    With ``freeze_mix`` the mix layers (``mix_x``, ``mix_p``, ``mix_v``: DetNet's fixed
    ``0.1 new + 0.9 old``, as :func:`.detnet_iid_hw.from_float` sets them) keep their weights
    and biases and only the rest is trained (:func:`freeze_mixes`)."""
    from models.detector.data import detection_config
    from models.detector.detnet_train import loss_fn

    gen = torch.Generator().manual_seed(seed)
    draw = batches(
        detection_config(cfg), cfg.batch_size, cfg.train_snr_db_min, cfg.train_snr_db_max, gen
    )
    if freeze_mix:
        freeze_mixes(model)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[max(1, int(steps * 0.6)), max(1, int(steps * 0.85))], gamma=0.5
    )
    return fit(
        model,
        draw,
        loss_fn,
        opt,
        steps=steps,
        scheduler=sched,
        callbacks=callbacks,
        description=description or f"QAT green {model.shape.n_layers}L {model.hidden}",
    )
