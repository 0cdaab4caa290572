"""The hardware effect of compression, measured in RTL through :func:`qphy.flow.build_and_verify`.

Contract: :func:`build_detector` takes any QAT FullyCon (a physically pruned one included),
exports it with quant's verified QONNX export and golden inputs drawn like the detector
target's (half of them saturating the input quantizer), runs FINN -> Verilator -> verdict into
``out_dir`` and returns the Report, with the model's accounting (:mod:`quant.compress.
accounting`) as extras. :func:`hardware_row` is the one-line summary experiments tabulate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.detector.config import QuantConfig
from models.detector.data import detection_config, golden_inputs
from qphy.contracts import HostExtras, Report
from quant.compress.accounting import account
from quant.recipes import INPUT_BITS


def export_detector(
    model: torch.nn.Module,
    out_dir: Path,
    variant: str,
    n_golden: int = 512,
    seed: int = 7,
    cfg: QuantConfig | None = None,
) -> dict:
    """Verified QONNX export of a QAT FullyCon (any widths) into ``out_dir``."""
    from quant.export import export_verified  # noqa: PLC0415 - qonnx only when exporting

    cfg = cfg or QuantConfig()
    shape = model.shape
    det = detection_config(cfg, n_rx=shape.n_rx, k_tx=shape.k_tx)
    in_scale = float(model.inp.act_quant.scale().detach().reshape(-1)[0])
    x = np.ascontiguousarray(golden_inputs(det, n_golden, in_scale, seed, INPUT_BITS))
    meta = {"variant": variant, "target": "detector"}
    return export_verified(model, x, Path(out_dir), meta, HostExtras(decision="sign"))


def build_detector(
    model: torch.nn.Module,
    out_dir: Path,
    variant: str,
    hw_cfg=None,
    sim_cfg=None,
    n_golden: int = 512,
) -> Report:
    """export -> FINN -> RTL verdict of a QAT FullyCon; the accounting rides in the extras."""
    from qphy.flow import build_and_verify  # noqa: PLC0415 - finn only when building

    acct = account(model).to_json()
    extras = {
        "compression": {k: v for k, v in acct.items() if k != "layers"},
        "layer_sizes": [list(s) for s in model.shape.layer_sizes()],
    }
    return build_and_verify(
        lambda d: export_detector(model, d, variant, n_golden),
        Path(out_dir),
        hw_cfg,
        sim_cfg,
        extras,
    )


def hardware_row(report: Report | dict) -> dict:
    """The figures compared between variants: verdict, cycles, latency, estimated resources."""
    rep = report.to_json() if isinstance(report, Report) else dict(report)
    res = rep.get("estimated_resources", {})
    comp = rep.get("compression", {})
    return {
        "variant": rep["variant"],
        "bit_exact": rep["bit_exact"],
        "vectors_checked": rep["vectors_checked"],
        "cycles_per_frame": rep["cycles_per_frame"],
        "latency_cycles": rep["latency_cycles"],
        "latency_us": rep["latency_us"],
        "LUT": res.get("LUT"),
        "BRAM_18K": res.get("BRAM_18K"),
        "DSP": res.get("DSP"),
        "weights": comp.get("weights"),
        "nonzero_weights": comp.get("nonzero_weights"),
        "layer_sizes": rep.get("layer_sizes"),
    }
