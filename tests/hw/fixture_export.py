"""Test helper: a small exported QAT FullyCon (the export-directory contract of quant/export.py).

Random init, a few train-mode passes on randn*2 to calibrate the activation quantizers, eval,
QONNX export verified against Brevitas, golden I/O from qonnx's executor (half of the inputs
large enough to saturate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SMALL_SHAPE = {"hidden": 64, "n_hidden_layers": 2}


def make_export(
    out_dir: Path,
    bits: str = "w4a4",
    n_golden: int = 256,
    seed: int = 0,
    hidden: int = 64,
    n_hidden_layers: int = 2,
) -> Path:
    """Export a small calibrated QAT FullyCon with quant's own verified export.

    Writes model.qonnx.onnx, golden_in/out.npy and export_report.json into ``out_dir``; every
    second golden vector saturates the input quantizer.
    """
    import torch

    from models.detector.fullycon import FullyConShape
    from models.detector.qat import QuantFullyCon
    from qphy.contracts import HostExtras
    from qphy.variants import parse_bits, variant_name
    from quant.export import export_verified
    from quant.recipes import Recipe

    torch.manual_seed(seed)
    shape = FullyConShape(hidden=hidden, n_hidden_layers=n_hidden_layers)
    model = QuantFullyCon(Recipe(parse_bits(bits)), shape)
    model.train()
    with torch.no_grad():
        for _ in range(10):
            model(torch.randn(256, shape.n_rx) * 2)
    model.eval()
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_golden, shape.n_rx)) * 2).astype(np.float32)
    x[1::2] *= 64.0  # saturate the input quantizer
    meta = {"variant": variant_name("fullycon", parse_bits(bits))}
    export_verified(model, x, Path(out_dir), meta, HostExtras(decision="sign"))
    return Path(out_dir)


def make_csi_export(
    out_dir: Path,
    arch: str = "convcsinet",
    cr: int = 32,
    width: int = 4,
    bits: str = "w4a4",
    n_golden: int = 256,
    seed: int = 0,
    fire_expand: str = "merged",
) -> Path:
    """Export a small random-init quantized CSI encoder (conv net) with quant's verified export.

    The activation quantizers are calibrated on a few train-mode passes of [0, 1) CSI-like
    inputs (``fire_expand``: ConvSquCsiNet's fire modules merged or with a real concat); golden
    inputs are CENTRED ((x - 0.5) * gain, models.csi.csinet.Centre, as the host sends
    them), every fourth one scaled up to saturate the input quantizer.
    """
    import torch

    from models.csi.csinet import Centre
    from models.csi.qat import QuantAutoencoder
    from models.registry import build_model
    from qphy.contracts import HostExtras, HostOp
    from qphy.variants import parse_bits, variant_name
    from quant.export import export_verified

    torch.manual_seed(seed)
    kwargs = {"width": width} if arch != "csinetplus" else {}
    model = QuantAutoencoder(
        build_model(arch, cr=cr, **kwargs).eval(), parse_bits(bits), 8, fire_expand
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(64, 2, 32, 32))
    model.eval()
    rng = np.random.default_rng(seed)
    x = ((rng.random((n_golden, 2, 32, 32)) - Centre.offset) * Centre.gain).astype(np.float32)
    x[3::4] *= 4.0
    export_verified(
        model.encoder,
        x,
        Path(out_dir),
        {"variant": variant_name(arch, parse_bits(bits))},
        HostExtras(input_pre=[HostOp("Sub", Centre.offset), HostOp("Mul", Centre.gain)]),
    )
    return Path(out_dir)
