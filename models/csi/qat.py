"""Quantized CSI encoders (the UE side, what goes on the FPGA) built from a trained float one.

:func:`quant_encoder` walks the float encoder of a :class:`~models.csi.csinet.CsiAutoencoder` and
builds the same layer chain in Brevitas, ready for QAT:

* BatchNorm is folded into the preceding conv (per-channel weight factor and an integer bias)
  when QAT starts. The exported graph then has no float BatchNorm whose float32 rounding could
  differ from the hardware's: every conv/linear is an exact integer MAC (power-of-two scales,
  Int32 bias at the accumulator scale), and streamlining moves the bias into the thresholds.
* LeakyReLU keeps its slope (``models.csi.csinet.LEAKY_SLOPE`` = 1/4, a power of two, so that
  ``slope * x`` is exact and the hw flow maps LeakyReLU + quantizer onto one set of thresholds
  exactly) and is followed by a SIGNED activation quantizer of ``bits.act_bits``.
* ``fire_expand="merged"`` (the default): a fire module's two expand convs become one 3x3 conv
  (:func:`models.csi.csinet.merge_fire_expand`) whose off-centre taps for the 1x1 half are held
  at zero by a fixed mask during QAT, so the quantized model computes exactly the fire module
  with one sliding window + MVAU. ``fire_expand="concat"``: the two expand convs stay two
  branches (:class:`QuantFireConcat`), concatenated on channels, which the hw flow maps onto
  qphy's RTL stream fork and concat (docs/rtl-layers.md). The BatchNorm over the concat is
  per channel, so each branch folds its own half; both branches share ONE activation
  quantizer, because the RTL concat joins integers of one scale.
* The encoder output quantizer is the feedback codeword: signed, ``codeword_bits`` wide.
* The input is the CENTRED CSI ((x - 0.5) * 16, :class:`.csinet.Centre` moves to the host),
  quantized to 8 signed bits with a power-of-two scale.

The decoder stays float (the base station) and is trained on together with the quantized
encoder, so it learns the quantized codewords.
"""

from __future__ import annotations

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from models.csi.csinet import LEAKY_SLOPE, Centre, CsiAutoencoder, Fire, merge_fire_expand
from qphy.errors import ConfigError, UnsupportedLayerError, UnsupportedNode
from qphy.variants import Bits
from quant.recipes import Recipe


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of conv(no bias) -> BatchNorm(eval) as one conv."""
    inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = weight * inv.reshape(-1, *([1] * (weight.dim() - 1)))
    b = bn.bias - bn.running_mean * inv
    return w.detach().clone(), b.detach().clone()


#: How a fire module's two expand convs are quantized: one merged 3x3 conv, or two branches and
#: a real concat (``--fire-expand``).
FIRE_EXPAND = ("merged", "concat")


def _bn_slice(bn: nn.BatchNorm2d, lo: int, hi: int) -> nn.BatchNorm2d:
    """Channels ``lo:hi`` of a BatchNorm (eval statistics and affine), as their own BatchNorm."""
    part = nn.BatchNorm2d(hi - lo, eps=bn.eps)
    with torch.no_grad():
        part.weight.copy_(bn.weight[lo:hi])
        part.bias.copy_(bn.bias[lo:hi])
        part.running_mean.copy_(bn.running_mean[lo:hi])
        part.running_var.copy_(bn.running_var[lo:hi])
    return part.eval()


class QuantConvBlock(nn.Module):
    """QuantConv2d (BN folded, Int32 bias) -> [LeakyReLU] -> signed activation quantizer.

    Args:
        conv: The float conv (no bias) to take the geometry and weights from.
        bn: Its BatchNorm (folded in).
        recipe: Quantizer choice.
        act: LeakyReLU + ``act_bits`` quantizer (True) or no activation + codeword quantizer.
        mask: Optional fixed 0/1 weight mask (the merged fire expand); zeros stay zero.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        bn: nn.BatchNorm2d,
        recipe: Recipe,
        act: bool,
        mask: torch.Tensor | None = None,
    ):
        super().__init__()
        self.conv = QuantConv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            bias=True,
            return_quant_tensor=True,
            **recipe.weight(),
            **recipe.bias(),
        )
        w, b = _fold_bn(conv.weight, bn)
        if mask is not None:
            w = w * mask
        with torch.no_grad():
            self.conv.weight.copy_(w)
            self.conv.bias.copy_(b)
        self.register_buffer("mask", mask if mask is not None else torch.ones(0))
        self.act = nn.LeakyReLU(LEAKY_SLOPE) if act else None
        self.quant = QuantIdentity(
            return_quant_tensor=True, **(recipe.signed_act() if act else recipe.output())
        )

    @torch.no_grad()
    def apply_mask(self) -> None:
        """Re-zero the masked weights (call after every optimizer step)."""
        if self.mask.numel():
            self.conv.weight.mul_(self.mask)

    def forward(self, x):
        y = self.conv(x)
        if self.act is not None:
            y = self.act(y)
        return self.quant(y)


class QuantFireConcat(nn.Module):
    """A fire module's expand stage as two branches and a channel concat (the real fire module).

    ``cat(expand1(s), expand3(s))`` with the fire's BatchNorm folded per half into each conv and
    LeakyReLU + ONE shared signed activation quantizer on both branches: qphy's RTL concat joins
    integer streams of one scale, so the two halves must not get quantizer scales of their own.

    Args:
        fire: The float fire module (its squeeze stage is quantized separately).
        recipe: Quantizer choice.
    """

    def __init__(self, fire: Fire, recipe: Recipe):
        super().__init__()
        n1, n = fire.expand1.out_channels, fire.bn.num_features
        self.expand1 = QuantConvBlock(fire.expand1, _bn_slice(fire.bn, 0, n1), recipe, act=True)
        self.expand3 = QuantConvBlock(fire.expand3, _bn_slice(fire.bn, n1, n), recipe, act=True)
        self.expand3.quant = self.expand1.quant  # one module: one scale at the concat

    def forward(self, s):
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


class QuantCsiEncoder(nn.Module):
    """The quantized encoder: centred ``(B, 2, 32, 32)`` -> codeword ``(B, M)``, the float
    value of the quantized codeword (integer x power-of-two scale), as the decoder receives it.

    Attributes:
        arch: Registry name of the float model it came from.
        codeword_bits: Width of each codeword element.
        fire_expand: ``merged`` or ``concat`` (see the module docstring).
    """

    def __init__(
        self,
        float_model: CsiAutoencoder,
        bits: Bits,
        codeword_bits: int,
        fire_expand: str = "merged",
    ):
        super().__init__()
        if fire_expand not in FIRE_EXPAND:
            raise ConfigError(
                f"--fire-expand must be one of {', '.join(FIRE_EXPAND)}, got {fire_expand!r}"
            )
        self.fire_expand = fire_expand
        recipe = Recipe(bits, output_bits=codeword_bits)
        self.arch = float_model.arch
        self.codeword_bits = codeword_bits
        self.inp = QuantIdentity(return_quant_tensor=True, **recipe.input())
        blocks: list[nn.Module] = []
        bad: list[UnsupportedNode] = []
        mods = list(float_model.encoder)
        for i, mod in enumerate(mods):
            if isinstance(mod, Centre):
                continue  # on the host
            if isinstance(mod, nn.Sequential):
                conv, bn = mod[0], mod[-2] if isinstance(mod[-1], nn.LeakyReLU) else mod[-1]
                if any(isinstance(m, nn.AvgPool2d) for m in mod):
                    bad.append(
                        UnsupportedNode(
                            f"encoder.{i}", "AvgPool2d", "use the strided-conv down-sampling"
                        )
                    )
                    continue
                blocks.append(
                    QuantConvBlock(conv, bn, recipe, act=isinstance(mod[-1], nn.LeakyReLU))
                )
            elif isinstance(mod, Fire):
                sq = mod.squeeze
                blocks.append(QuantConvBlock(sq[0], sq[1], recipe, act=True))
                if fire_expand == "concat":
                    blocks.append(QuantFireConcat(mod, recipe))
                    continue
                merged = merge_fire_expand(mod)
                mask = torch.zeros_like(merged.weight)
                mask[: mod.expand1.out_channels, :, 1, 1] = 1.0
                mask[mod.expand1.out_channels :] = 1.0
                blocks.append(QuantConvBlock(merged, mod.bn, recipe, act=True, mask=mask))
            elif isinstance(mod, nn.Flatten):
                blocks.append(nn.Flatten())
            elif isinstance(mod, nn.Linear):
                lin = QuantLinear(
                    mod.in_features,
                    mod.out_features,
                    bias=True,
                    return_quant_tensor=True,
                    **recipe.weight(),
                    **recipe.bias(),
                )
                with torch.no_grad():
                    lin.weight.copy_(mod.weight)
                    lin.bias.copy_(mod.bias)
                blocks.append(lin)
                blocks.append(QuantIdentity(return_quant_tensor=True, **recipe.output()))
            else:
                bad.append(UnsupportedNode(f"encoder.{i}", type(mod).__name__, "no quantized form"))
        if bad:
            raise UnsupportedLayerError(bad, stage="quantized encoder")
        self.blocks = nn.Sequential(*blocks)

    def conv_blocks(self) -> list[QuantConvBlock]:
        return [b for b in self.blocks.modules() if isinstance(b, QuantConvBlock)]

    def apply_masks(self) -> None:
        """Keep the merged fire expands equal to fire modules (after every optimizer step)."""
        for b in self.conv_blocks():
            b.apply_mask()

    def forward(self, x):
        return self.blocks(self.inp(x)).value  # a plain tensor: one graph output on export


class QuantAutoencoder(nn.Module):
    """Quantized encoder + float decoder, on [0, 1]-scaled inputs like the float model.

    ``forward`` centres the input (the host's job in hardware), runs the quantized encoder and
    feeds the codeword's float value to the float decoder.
    """

    def __init__(
        self,
        float_model: CsiAutoencoder,
        bits: Bits,
        codeword_bits: int,
        fire_expand: str = "merged",
    ):
        super().__init__()
        self.arch = float_model.arch
        self.cr = float_model.cr
        self.codeword_size = float_model.codeword_size
        self.encoder = QuantCsiEncoder(float_model, bits, codeword_bits, fire_expand)
        self.decoder = float_model.decoder
        self.centre = Centre()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Float value of the quantized codeword for [0, 1]-scaled ``x``."""
        return self.encoder(self.centre(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))
