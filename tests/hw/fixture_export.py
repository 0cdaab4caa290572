"""Test helper: a small exported QAT FullyCon (the export-directory contract of quant/export.py).

Random init, a few train-mode passes on randn*2 to calibrate the activation quantizers, eval,
QONNX export, golden I/O from qonnx's executor (half of the inputs large enough to saturate).
"""

from __future__ import annotations

import json
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
    """Write model.qonnx.onnx, golden_in/out.npy and export_report.json into ``out_dir``."""
    import torch
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    from models.fullycon import FullyConShape
    from qphy.variants import parse_bits, variant_name
    from quant.qat_fullycon import QuantFullyCon
    from quant.recipes import Recipe
    from sim.golden import execute_batch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    shape = FullyConShape(hidden=hidden, n_hidden_layers=n_hidden_layers)
    model = QuantFullyCon(Recipe(parse_bits(bits)), shape)
    model.train()
    with torch.no_grad():
        for _ in range(10):
            model(torch.randn(256, shape.n_rx) * 2)
    model.eval()
    path = out_dir / "model.qonnx.onnx"
    export_qonnx(model, torch.randn(1, shape.n_rx), export_path=str(path))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_golden, shape.n_rx)) * 2).astype(np.float32)
    x[1::2] *= 64.0  # saturate the input quantizer
    y = execute_batch(cleanup_model(ModelWrapper(str(path))), x)
    with torch.no_grad():
        torch_y = model(torch.from_numpy(x)).numpy()
    np.save(out_dir / "golden_in.npy", x)
    np.save(out_dir / "golden_out.npy", y.astype(np.float32))
    (out_dir / "export_report.json").write_text(
        json.dumps(
            {
                "variant": variant_name("fullycon", parse_bits(bits)),
                "vectors_checked": n_golden,
                "qonnx_matches_torch": bool(np.array_equal(torch_y, y)),
            }
        )
    )
    return out_dir
