"""Test helper: small Brevitas models as users write them, exported with export_qonnx.

Only ``bit_width`` / ``weight_bit_width`` arguments (Brevitas' default quantizers: per-tensor
float scales, not powers of two; an 8-bit QuantIdentity input; float biases) and a last layer
without an output quantizer, so the graph ends in a float scale and bias. Seeded; a few
train-mode passes calibrate the activation quantizers.
"""

from __future__ import annotations

from pathlib import Path


def _models():
    import torch
    from brevitas import nn as qnn
    from brevitas.quant import Int8WeightPerChannelFloat, Int32Bias
    from torch import nn

    class Mlp(nn.Module):
        """16 -> 32 -> 32 -> 5, w4 weights, 4-bit QuantReLU, float output layer."""

        shape = (16,)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 32, bias=True, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(32, 32, bias=True, weight_bit_width=4)
            self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc3 = qnn.QuantLinear(32, 5, bias=True, weight_bit_width=4)

        def forward(self, x):
            return self.fc3(self.r2(self.fc2(self.r1(self.fc1(self.inp(x))))))

    class Mlp8PerChannel(nn.Module):
        """All-default 8-bit quantizers, per-channel weight scales, Int32 biases."""

        shape = (16,)

        def __init__(self):
            super().__init__()
            kw = {"weight_quant": Int8WeightPerChannelFloat, "bias_quant": Int32Bias}
            self.inp = qnn.QuantIdentity(return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 32, bias=True, **kw)
            self.r1 = qnn.QuantReLU(return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(32, 5, bias=True, **kw)

        def forward(self, x):
            return self.fc2(self.r1(self.fc1(self.inp(x))))

    class Cnn2d(nn.Module):
        """1x8x8 -> conv 3x3 s2 p1 (4) -> conv 3x3 p1 (8) -> flatten -> linear 10."""

        shape = (1, 8, 8)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(1, 4, 3, padding=1, stride=2, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.c2 = qnn.QuantConv2d(4, 8, 3, padding=1, weight_bit_width=4)
            self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8 * 4 * 4, 10, weight_bit_width=4)

        def forward(self, x):
            x = self.r2(self.c2(self.r1(self.c1(self.inp(x)))))
            return self.fc(torch.flatten(x, 1))

    class Cnn2dBatchNorm(nn.Module):
        """QuantConv2d -> BatchNorm2d -> QuantReLU (folded into thresholds) -> linear 10."""

        shape = (1, 8, 8)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(1, 4, 3, padding=1, stride=2, weight_bit_width=4)
            self.bn = nn.BatchNorm2d(4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(4 * 4 * 4, 10, weight_bit_width=4)

        def forward(self, x):
            return self.fc(torch.flatten(self.r1(self.bn(self.c1(self.inp(x)))), 1))

    class Cnn1d(nn.Module):
        """RadioML kind, 2x32 I/Q -> conv1d k3 p1 (8) -> conv1d k3 p1 s2 (8) -> linear 6.

        ``pool=True`` down-samples with MaxPool1d(2) instead of the stride (refused)."""

        shape = (2, 32)

        def __init__(self, pool: bool = False):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.c1 = qnn.QuantConv1d(2, 8, 3, padding=1, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool1d(2) if pool else nn.Identity()
            stride = 1 if pool else 2
            self.c2 = qnn.QuantConv1d(8, 8, 3, padding=1, stride=stride, weight_bit_width=4)
            self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8 * 16, 6, weight_bit_width=4)

        def forward(self, x):
            x = self.r2(self.c2(self.pool(self.r1(self.c1(self.inp(x))))))
            return self.fc(torch.flatten(x, 1))

    class NoInputQuant(nn.Module):
        """The first QuantLinear sees the float input (no QuantIdentity): refused."""

        shape = (16,)

        def __init__(self):
            super().__init__()
            self.fc1 = qnn.QuantLinear(16, 8, bias=True, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(8, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            return self.fc2(self.r1(self.fc1(x)))

    class FloatReluOut(nn.Module):
        """A plain nn.ReLU after the last layer (an unquantized float output op): refused."""

        shape = (16,)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 4, bias=True, weight_bit_width=4)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc1(self.inp(x)))

    return {
        "mlp": Mlp,
        "mlp8_perchannel": Mlp8PerChannel,
        "cnn2d": Cnn2d,
        "cnn2d_bn": Cnn2dBatchNorm,
        "cnn1d": Cnn1d,
        "cnn1d_maxpool": lambda: Cnn1d(pool=True),
        "no_input_quant": NoInputQuant,
        "float_relu_out": FloatReluOut,
    }


USER_MODELS = (
    "mlp",
    "mlp8_perchannel",
    "cnn2d",
    "cnn2d_bn",
    "cnn1d",
    "cnn1d_maxpool",
    "no_input_quant",
    "float_relu_out",
)


def export_user_model(name: str, path: Path, seed: int = 0) -> Path:
    """Build, calibrate (5 train-mode passes on randn) and export_qonnx one model to ``path``."""
    import torch
    from brevitas.export import export_qonnx

    torch.manual_seed(seed)
    model = _models()[name]()
    shape = model.shape
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(64, *shape))
    model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, torch.zeros(1, *shape), export_path=str(path), dynamo=False)
    return path
