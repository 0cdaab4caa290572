"""Test helper: small Brevitas models with branches, joins and pooling (default quantizers).

A skip connection adds two tensors quantized by the SAME QuantIdentity (one scale), so the add
is an integer add of two streams once the scale moves past it, as FINN streamlines residual
adds. Seeded; a few train-mode passes calibrate the activation quantizers.
"""

from __future__ import annotations

from pathlib import Path


def _models():
    from brevitas import nn as qnn
    from torch import nn

    class ResMlp(nn.Module):
        """x + f(x): 12 -> 12 (relu) -> 12, shared 4-bit quantizer, then 12 -> 4 (float)."""

        shape = (12,)

        def __init__(self):
            super().__init__()
            self.q = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(12, 12, bias=True, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(12, 12, bias=True, weight_bit_width=4)
            self.fc3 = qnn.QuantLinear(12, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = self.q(x)
            return self.fc3(x + self.q(self.fc2(self.r1(self.fc1(x)))))

    class ResCnn(nn.Module):
        """Residual conv block on 4x6x6: x + conv(relu(conv(x))), then flatten -> linear 4."""

        shape = (4, 6, 6)

        def __init__(self):
            super().__init__()
            self.q = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(4, 4, 3, padding=1, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.c2 = qnn.QuantConv2d(4, 4, 3, padding=1, weight_bit_width=4)
            self.fc = qnn.QuantLinear(4 * 36, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = self.q(x)
            y = x + self.q(self.c2(self.r1(self.c1(x))))
            return self.fc(y.flatten(1))

    class Fire(nn.Module):
        """SqueezeNet fire module on 4x6x6: squeeze 1x1 (2), expand 1x1 (4) || 3x3 (4), concat."""

        shape = (4, 6, 6)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.sq = qnn.QuantConv2d(4, 2, 1, weight_bit_width=4)
            self.rs = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.e1 = qnn.QuantConv2d(2, 4, 1, weight_bit_width=4)
            self.e3 = qnn.QuantConv2d(2, 4, 3, padding=1, weight_bit_width=4)
            self.re = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8 * 36, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            import torch

            s = self.rs(self.sq(self.inp(x)))
            y = torch.cat([self.re(self.e1(s)), self.re(self.e3(s))], dim=1)
            return self.fc(y.flatten(1))

    class Pool1d(nn.Module):
        """RadioML-style: 2x16 -> conv1d 3 (4) -> relu -> MaxPool1d(2) -> linear 4."""

        shape = (2, 16)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.c1 = qnn.QuantConv1d(2, 4, 3, padding=1, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool1d(2)
            self.fc = qnn.QuantLinear(4 * 8, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            return self.fc(self.pool(self.r1(self.c1(self.inp(x)))).flatten(1))

    class Pool2dGap(nn.Module):
        """1x8x8 -> conv 3x3 (4) -> relu -> MaxPool2d(2) -> conv 3x3 (6) -> relu -> global
        average pool -> 4-bit requantization -> linear 4 (float)."""

        shape = (1, 8, 8)

        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4)
            self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 6, 3, padding=1, weight_bit_width=4)
            self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=False)
            self.gap = nn.AdaptiveAvgPool2d(1)
            # Unsigned requantization of the non-negative average (a QuantReLU).
            self.q = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(6, 4, bias=True, weight_bit_width=4)

        def forward(self, x):
            y = self.r2(self.c2(self.pool(self.r1(self.c1(self.inp(x))))))
            return self.fc(self.q(self.gap(y)).flatten(1))

    return {
        "res_mlp": ResMlp,
        "res_cnn": ResCnn,
        "fire": Fire,
        "pool1d": Pool1d,
        "pool2d_gap": Pool2dGap,
    }


GRAPH_MODELS = ("res_mlp", "res_cnn", "fire", "pool1d", "pool2d_gap")


def export_graph_model(name: str, path: Path, seed: int = 0) -> Path:
    """Build, calibrate (5 train-mode passes on randn) and export_qonnx one model to ``path``."""
    import torch
    from brevitas.export import export_qonnx

    torch.manual_seed(seed)
    model = _models()[name]()
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(64, *model.shape))
    model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, torch.zeros(1, *model.shape), export_path=str(path), dynamo=False)
    return path
