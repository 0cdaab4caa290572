"""The detector's quant-stage jobs: train-or-load, evaluate, export (what the CLI calls)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models.fullycon import FullyConShape
from qphy.variants import Bits, variant_name
from quant import checkpoint
from quant.config import QuantConfig
from quant.data import detection_config, golden_inputs
from quant.evaluate import evaluate_ber, snr_at_ber, write_ber
from quant.export import export_verified
from quant.recipes import INPUT_BITS
from quant.train import train_float, train_qat

log = logging.getLogger(__name__)


def load_or_train(
    cfg: QuantConfig, ckpt_dir: Path | None = None, retrain: bool = False
) -> torch.nn.Module:
    """The model of ``cfg.bits`` (None: float) from its checkpoint, training it if absent.

    QAT starts from the float checkpoint, which is itself loaded or trained first.
    """
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else checkpoint.SHIPPED_DIR
    path = ckpt_dir / checkpoint.default_path("fullycon", cfg.bits, cfg.channel).name
    if path.is_file() and not retrain:
        model, _ = checkpoint.load_fullycon(path, cfg.bits)
        log.info("loaded %s", path)
        return model
    if cfg.bits is None:
        model, loss = train_float(cfg, FullyConShape())
        recipe = None
    else:
        float_model = load_or_train(replace(cfg, bits=None), ckpt_dir, retrain=False)
        model, loss = train_qat(cfg, float_model)
        recipe = model.recipe
    meta = checkpoint.fullycon_meta(
        model.shape,
        cfg.bits,
        recipe,
        channel=cfg.channel,
        final_train_loss=loss,
        train_config=cfg.to_json(),
    )
    checkpoint.save(model, path, meta)
    log.info("saved %s", path)
    return model


def evaluate_detector(cfg: QuantConfig, out_dir: Path, ckpt_dir: Path | None = None) -> dict:
    """BER of float, the QAT variant and ZF/MMSE/ML; writes ber.json and ber.png."""
    if cfg.bits is None:
        raise ValueError("evaluate_detector needs the QAT bits")
    float_model = load_or_train(replace(cfg, bits=None), ckpt_dir)
    qat_model = load_or_train(cfg, ckpt_dir)
    result = evaluate_ber(cfg, {"float": float_model, cfg.bits.tag: qat_model})
    result["channel"] = cfg.channel
    result["snr_db_at_ber_1e-3"] = {
        name: snr_at_ber(result["snr_db"], curve, 1e-3) for name, curve in result["ber"].items()
    }
    write_ber(result, Path(out_dir), f"FullyCon {cfg.bits.tag}, {cfg.channel} 30x20 BPSK")
    return result


def export_detector(
    cfg: QuantConfig, out_dir: Path, n_vectors: int = 2000, ckpt_dir: Path | None = None
) -> dict:
    """Verified QONNX export of the QAT detector with golden I/O (see quant.export)."""
    bits: Bits | None = cfg.bits
    if bits is None:
        raise ValueError("export_detector needs the QAT bits")
    model = load_or_train(cfg, ckpt_dir)
    in_scale = float(model.inp.act_quant.scale().detach().reshape(-1)[0])
    x = golden_inputs(detection_config(cfg), n_vectors, in_scale, cfg.seed + 7, INPUT_BITS)
    meta = {
        "variant": variant_name("fullycon", bits),
        "channel": cfg.channel,
        "input_bits": INPUT_BITS,
    }
    return export_verified(model, np.ascontiguousarray(x), Path(out_dir), meta)
