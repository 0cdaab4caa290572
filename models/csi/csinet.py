"""CSI-feedback autoencoders (float): CsiNet+, ConvCsiNet and ConvSquCsiNet.

Contract: every model maps a ``(B, 2, 32, 32)`` angular-delay tensor in [0, 1] (real and
imaginary parts, see ``models/csi/data.py``) to a codeword ``(B, M)`` with M = 2048 / CR
(``encoder``, the UE side that goes on the FPGA) and back to ``(B, 2, 32, 32)`` in [0, 1]
(``decoder``, float at the base station). CR is one of 4, 8, 16, 32 (M = 512, 256, 128, 64).
``model.encoder`` and ``model.decoder`` are separate submodules; ``forward`` chains them.

Encoders start with :class:`Centre` ((x - 0.5) * 16, see there why), then are plain chains
conv -> BatchNorm -> LeakyReLU(1/4) (convolutions have no bias because BatchNorm supplies it;
the quantized encoder folds BatchNorm into the conv, ``models/csi/qat.py``). The slope is
1/4, not CsiNet's 0.3: a power of two makes ``slope * x`` exact in float32, so the hw flow
can map LeakyReLU + quantizer onto integer thresholds that agree with the QONNX reference bit
for bit (with 0.3 the reference's float32 rounding decides ties). The codeword layer has
BatchNorm but no activation: the codeword is linear, the quantizer set by the quant stage
decides its bit width.

* CsiNet+ (Guo et al., 2020): encoder = two 7x7 convs with 2 filters, flatten 2048, linear to
  M. Decoder = linear to 2048, 7x7 conv, five RefineNet blocks (7x7 -> 8, 5x5 -> 16,
  3x3 -> 2, residual add), 3x3 conv, :class:`Uncentre`. 2.12 M weights at CR 4.

  Decoders work on the centred estimate and end with :class:`Uncentre` instead of CsiNet's
  sigmoids (and its BatchNorm before the first one). Measured on indoor CR 4, 300 Adam steps:
  with sigmoids CsiNet+ stayed at +0.3 dB NMSE even after 1000 steps, ConvCsiNet at 0 dB;
  centred, they reached -10.8 and -8.3 dB. The decoder is float at the base station; the
  encoders, the part on the FPGA, are CsiNet+'s / as described.
* ConvCsiNet: no linear layers. Encoder 3x3 convs 2 -> w (32x32), w -> w stride 2 (16x16),
  w -> 2w (16x16), 2w -> 2w stride 2 (8x8), codeword conv 2w -> M/64 (8x8): the codeword is
  (M/64) x 8 x 8. Decoder: conv to 2w at 8x8, nearest up-sampling x2, convs 2w -> 2w -> w,
  up-sampling x2, conv w -> w, conv to 2 (up-sampling + conv == a stride-2
  transposed conv with a tied kernel), then CsiNet+'s refinement head (five RefineNet blocks,
  3x3 conv, Uncentre), shared by all three nets so that they differ in encoder and trunk only.
  Down-sampling is by strided convolution, which FINN maps to its RTL sliding-window generator
  + MVAU (it has no RTL pooling). It subsumes conv + average pooling: AvgPool2d(2) applied to a
  KxK conv equals one (K+1)x(K+1) conv of stride 2 whose kernel is the KxK kernel convolved
  with a 2x2 box of 1/4. ``downsample=Downsample.AVGPOOL`` builds the pooled variant
  (stride-1 conv, then AvgPool2d(2) before the BatchNorm) for comparison.
* ConvSquCsiNet: ConvCsiNet with its wide 3x3 convs (both channel counts >= 8) replaced by
  SqueezeNet fire modules (1x1 squeeze to C_out / 4, then 1x1 and 3x3 expand to C_out / 2
  each, concatenated); the first conv (2 input channels, as SqueezeNet's conv1), the convs
  with 2 channels and the refinement head stay, the codeword conv and the decoder's first conv
  become 1x1 (as SqueezeNet's conv10). A strided fire strides its expand convs. Result: 0.48 to
  0.51 of ConvCsiNet's weights and 0.36 of its encoder FLOPs (``cost_table``). By default
  (``--fire-expand merged``) the quantized encoder uses :func:`merge_fire_expand`, which turns
  the two expand branches into one equivalent 3x3 conv (1x1 kernels at the centre tap);
  ``--fire-expand concat`` keeps both branches and a real concat (qphy's RTL fork/concat).

Costs (:func:`model_cost`), the seed paper's convention: a conv with C_in inputs, C_out outputs
and a KxK kernel has (C_in K^2 + 1) C_out weights (bias included: BatchNorm folds into one)
and 2 H W (C_in K^2 + 1) C_out FLOPs for an H x W output; a linear layer (in + 1) out weights
and 2 (in + 1) out FLOPs; a transposed conv counts over its input pixels. BatchNorm,
activations, pooling, up-sampling and residual adds are not counted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
from torch import nn

from models.registry import register
from qphy.errors import ConfigError

#: Compression ratios and their codeword sizes M = 2048 / CR.
CODEWORD_SIZES: dict[int, int] = {4: 512, 8: 256, 16: 128, 32: 64}
#: Model input/output shape without the batch axis: (real/imag, delay taps, angles).
INPUT_SHAPE: tuple[int, int, int] = (2, 32, 32)
ARCHS: tuple[str, ...] = ("csinetplus", "convcsinet", "convsqucsinet")
LEAKY_SLOPE = 0.25
_CODE_HW = 8  # spatial size of the conv nets' codeword map


def codeword_size(cr: int) -> int:
    """M for compression ratio ``cr``.

    Raises:
        ConfigError: ``cr`` not in {4, 8, 16, 32}.
    """
    if isinstance(cr, bool) or cr not in CODEWORD_SIZES:
        known = ", ".join(str(c) for c in CODEWORD_SIZES)
        raise ConfigError(f"compression ratio cr={cr!r} is not one of: {known}")
    return CODEWORD_SIZES[cr]


class Downsample(enum.Enum):
    """How ConvCsiNet's encoder halves the feature map."""

    STRIDED = "strided"  # stride-2 conv (FINN RTL friendly)
    AVGPOOL = "avgpool"  # stride-1 conv + AvgPool2d(2)


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, act: bool = True, pool: bool = False
) -> nn.Sequential:
    """Conv ('same' padding) -> [AvgPool2d(2)] -> BatchNorm -> [LeakyReLU(1/4)]."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    ]
    if pool:
        layers.append(nn.AvgPool2d(2))
    layers.append(nn.BatchNorm2d(c_out))
    if act:
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


class Centre(nn.Module):
    """``(x - 0.5) * 16``: the encoders' first op, zero-mean inputs of useful size.

    The [0, 1] data sit at 0.5 except for a few large entries (per-sample peak at 0 or 1, RMS of
    x - 0.5 about 0.017). Fed raw, the 0.5 offset swamps the signal and training stalls near
    0 dB NMSE (measured: a linear autoencoder on raw inputs stays above 0 dB after 1000 Adam
    steps, on centred inputs it reaches -12 dB); the power-of-two gain brings the RMS to ~0.3
    (exact in float32, so the host can do it before the input quantizer). :class:`Uncentre`
    undoes both at the decoder's end.
    """

    offset: float = 0.5
    gain: float = 16.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) * self.gain


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, 1x1 + 3x3 expand, concatenated, BN, LeakyReLU.

    Args:
        c_in: Input channels.
        squeeze: Channels after the 1x1 squeeze.
        c_out: Output channels; half from the 1x1 expand, half from the 3x3 expand.
        stride: Stride of both expand convs (2 halves the map).
    """

    def __init__(self, c_in: int, squeeze: int, c_out: int, stride: int = 1):
        super().__init__()
        if c_out % 2:
            raise ConfigError(f"fire module output channels must be even, got {c_out}")
        self.squeeze = conv_bn(c_in, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, c_out // 2, 1, stride=stride, bias=False)
        self.expand3 = nn.Conv2d(squeeze, c_out // 2, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return self.act(self.bn(torch.cat([self.expand1(s), self.expand3(s)], dim=1)))


def merge_fire_expand(fire: Fire) -> nn.Conv2d:
    """One 3x3 conv equal to ``cat(expand1(s), expand3(s))`` (1x1 kernels at the centre tap).

    FINN has no RTL stream fork or concat; this single conv maps to one sliding window + MVAU.
    It computes zeros for the off-centre taps of the 1x1 half (FINN does not skip them).
    """
    e1, e3 = fire.expand1, fire.expand3
    merged = nn.Conv2d(
        e3.in_channels,
        e1.out_channels + e3.out_channels,
        3,
        stride=e3.stride,
        padding=1,
        bias=False,
    )
    with torch.no_grad():
        merged.weight.zero_()
        merged.weight[: e1.out_channels, :, 1, 1] = e1.weight[:, :, 0, 0]
        merged.weight[e1.out_channels :] = e3.weight
    return merged


class RefineBlock(nn.Module):
    """CsiNet's RefineNet on the centred estimate: 7x7 -> 8, 5x5 -> 16, 3x3 -> 2, residual add.

    No activation after the add (CsiNet's LeakyReLU there sat on sigmoid outputs in [0, 1],
    where it is the identity; on centred values it would squash the negative half), and the
    last BatchNorm starts at zero gain, so a fresh block is the identity.
    """

    def __init__(self, channels: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, 8, 7),
            conv_bn(8, 16, 5),
            conv_bn(16, channels, 3, act=False),
        )
        nn.init.zeros_(self.body[-1][-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Uncentre(nn.Module):
    """``clamp(x / 16 + 0.5, 0, 1)``: the decoders' last op, the inverse of :class:`Centre`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x / Centre.gain + Centre.offset, 0.0, 1.0)


class CsiAutoencoder(nn.Module):
    """Encoder + decoder; ``forward(x) = decoder(encoder(x))``.

    Attributes:
        cr: Compression ratio.
        codeword_size: M = 2048 / cr.
        encoder: ``(B, 2, 32, 32) -> (B, M)``.
        decoder: ``(B, M) -> (B, 2, 32, 32)`` in [0, 1].
    """

    arch: str = ""

    def __init__(self, cr: int, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.cr = cr
        self.codeword_size = codeword_size(cr)
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _refine_head(n_refine: int) -> list[nn.Module]:
    return [RefineBlock() for _ in range(n_refine)] + [nn.Conv2d(2, 2, 3, padding=1), Uncentre()]


@register("csinetplus")
class CsiNetPlus(CsiAutoencoder):
    """CsiNet+ (two 7x7 convs + linear encoder; linear + RefineNet decoder).

    Args:
        cr: Compression ratio, one of 4, 8, 16, 32.
        n_refine: RefineNet blocks in the decoder (5 in CsiNet+).
    """

    arch = "csinetplus"

    def __init__(self, cr: int = 4, n_refine: int = 5):
        m = codeword_size(cr)
        n_in = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
        encoder = nn.Sequential(
            Centre(),
            conv_bn(2, 2, 7),
            conv_bn(2, 2, 7),
            nn.Flatten(),
            nn.Linear(n_in, m),
        )
        decoder = nn.Sequential(
            nn.Linear(m, n_in),
            nn.Unflatten(1, INPUT_SHAPE),
            nn.Conv2d(2, 2, 7, padding=3),
            *_refine_head(n_refine),
        )
        super().__init__(cr, encoder, decoder)


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 4 or width % 4:
        raise ConfigError(f"width must be a multiple of 4 and >= 4, got {width!r}")


@register("convcsinet")
class ConvCsiNet(CsiAutoencoder):
    """ConvCsiNet: convolutions only, strided down-sampling to a (M/64) x 8 x 8 codeword.

    Args:
        cr: Compression ratio, one of 4, 8, 16, 32.
        width: w, the channel width of the first layers (2w after the first down-sampling).
        downsample: Strided convs (default) or stride-1 convs + AvgPool2d(2).
        n_refine: RefineNet blocks at the end of the decoder.
    """

    arch = "convcsinet"

    def __init__(
        self,
        cr: int = 4,
        width: int = 16,
        downsample: Downsample | str = Downsample.STRIDED,
        n_refine: int = 5,
    ):
        m = codeword_size(cr)
        _check_width(width)
        try:
            pooled = Downsample(downsample) is Downsample.AVGPOOL
        except ValueError:
            raise ConfigError(f"downsample={downsample!r} is not 'strided' or 'avgpool'") from None
        w, c_code = width, m // _CODE_HW**2

        def down(c_in: int, c_out: int) -> nn.Sequential:
            return conv_bn(c_in, c_out, 3, stride=1 if pooled else 2, pool=pooled)

        encoder = nn.Sequential(
            Centre(),
            conv_bn(2, w, 3),
            down(w, w),
            conv_bn(w, 2 * w, 3),
            down(2 * w, 2 * w),
            conv_bn(2 * w, c_code, 3, act=False),
            nn.Flatten(),
        )
        decoder = nn.Sequential(
            nn.Unflatten(1, (c_code, _CODE_HW, _CODE_HW)),
            conv_bn(c_code, 2 * w, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn(2 * w, 2 * w, 3),
            conv_bn(2 * w, w, 3),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv_bn(w, w, 3),
            nn.Conv2d(w, 2, 3, padding=1),
            *_refine_head(n_refine),
        )
        super().__init__(cr, encoder, decoder)


@register("convsqucsinet")
class ConvSquCsiNet(CsiAutoencoder):
    """ConvSquCsiNet: ConvCsiNet with its wide 3x3 convs replaced by fire modules.

    Args:
        cr: Compression ratio, one of 4, 8, 16, 32.
        width: w, as in ConvCsiNet.
        squeeze_div: Squeeze channels = output channels / squeeze_div.
        n_refine: RefineNet blocks at the end of the decoder.
    """

    arch = "convsqucsinet"

    def __init__(self, cr: int = 4, width: int = 16, squeeze_div: int = 4, n_refine: int = 5):
        m = codeword_size(cr)
        _check_width(width)
        if isinstance(squeeze_div, bool) or squeeze_div not in (1, 2, 4, 8):
            raise ConfigError(f"squeeze_div must be 1, 2, 4 or 8, got {squeeze_div!r}")
        w, c_code = width, m // _CODE_HW**2

        def fire(c_in: int, c_out: int, stride: int = 1) -> Fire:
            return Fire(c_in, max(c_out // squeeze_div, 2), c_out, stride)

        encoder = nn.Sequential(
            Centre(),
            conv_bn(2, w, 3),
            fire(w, w, stride=2),
            fire(w, 2 * w),
            fire(2 * w, 2 * w, stride=2),
            conv_bn(2 * w, c_code, 1, act=False),
            nn.Flatten(),
        )
        decoder = nn.Sequential(
            nn.Unflatten(1, (c_code, _CODE_HW, _CODE_HW)),
            conv_bn(c_code, 2 * w, 1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            fire(2 * w, 2 * w),
            fire(2 * w, w),
            nn.Upsample(scale_factor=2, mode="nearest"),
            fire(w, w),
            nn.Conv2d(w, 2, 3, padding=1),
            *_refine_head(n_refine),
        )
        super().__init__(cr, encoder, decoder)


# ---------------------------------------------------------------------------------------------
# Costs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCost:
    """Weights and FLOPs of one conv/linear layer (seed-paper convention, module docstring)."""

    name: str
    kind: str
    params: int
    flops: int


@dataclass(frozen=True)
class ModelCost:
    """Costs of one model, encoder and decoder apart.

    Attributes:
        arch: Registry name.
        cr: Compression ratio.
        encoder_params: Encoder weights incl. one bias per output channel.
        encoder_flops: Encoder FLOPs per sample.
        decoder_params: Decoder weights incl. biases.
        decoder_flops: Decoder FLOPs per sample.
        torch_params: ``sum(p.numel())`` of the torch module (BatchNorm affine included, no
            bias in convs followed by BatchNorm), for reference.
        layers: Per layer, encoder first.
    """

    arch: str
    cr: int
    encoder_params: int
    encoder_flops: int
    decoder_params: int
    decoder_flops: int
    torch_params: int
    layers: tuple[LayerCost, ...] = field(repr=False)

    @property
    def params(self) -> int:
        """Encoder + decoder weights."""
        return self.encoder_params + self.decoder_params

    @property
    def flops(self) -> int:
        """Encoder + decoder FLOPs."""
        return self.encoder_flops + self.decoder_flops


def _layer_cost(name: str, mod: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> LayerCost:
    if isinstance(mod, nn.Linear):
        per = (mod.in_features + 1) * mod.out_features
        return LayerCost(name, "linear", per, 2 * per)
    kh, kw = mod.kernel_size
    per = (mod.in_channels // mod.groups * kh * kw + 1) * mod.out_channels
    if isinstance(mod, nn.ConvTranspose2d):
        pixels = inp.shape[-2] * inp.shape[-1]
        return LayerCost(name, "convtranspose", per, 2 * pixels * per)
    return LayerCost(name, "conv", per, 2 * out.shape[-2] * out.shape[-1] * per)


def _part_costs(
    part: nn.Module, x: torch.Tensor, prefix: str
) -> tuple[list[LayerCost], torch.Tensor]:
    costs: list[LayerCost] = []
    hooks = []
    for name, mod in part.named_modules():
        if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):

            def hook(m, args, out, _name=f"{prefix}.{name}"):
                costs.append(_layer_cost(_name, m, args[0], out))

            hooks.append(mod.register_forward_hook(hook))
    try:
        y = part(x)
    finally:
        for h in hooks:
            h.remove()
    return costs, y


def model_cost(model: CsiAutoencoder) -> ModelCost:
    """Weights and FLOPs of ``model``'s encoder and decoder (one forward of a dummy sample)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, *INPUT_SHAPE)
            enc, code = _part_costs(model.encoder, x, "encoder")
            dec, _ = _part_costs(model.decoder, code, "decoder")
    finally:
        model.train(was_training)
    return ModelCost(
        arch=model.arch,
        cr=model.cr,
        encoder_params=sum(c.params for c in enc),
        encoder_flops=sum(c.flops for c in enc),
        decoder_params=sum(c.params for c in dec),
        decoder_flops=sum(c.flops for c in dec),
        torch_params=sum(p.numel() for p in model.parameters()),
        layers=tuple(enc + dec),
    )


def cost_table(**kwargs) -> list[ModelCost]:
    """:func:`model_cost` of every arch x CR with default sizes (``kwargs`` go to each ctor)."""
    from models.registry import build_model

    return [
        model_cost(build_model(arch, cr=cr, **kwargs)) for arch in ARCHS for cr in CODEWORD_SIZES
    ]
