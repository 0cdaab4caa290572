"""The detector's quant-stage jobs: train-or-load and BER evaluation (the detector target's)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from models.fullycon import FullyConShape
from quant import checkpoint
from quant.config import QuantConfig
from quant.evaluate import evaluate_ber, snr_at_ber, write_ber
from quant.train import train_float, train_qat

log = logging.getLogger(__name__)


def load_or_train(
    cfg: QuantConfig, ckpt_dir: Path | None = None, retrain: bool = False
) -> torch.nn.Module:
    """The model of ``cfg.bits`` (None: float) from its checkpoint, training it if absent.

    QAT starts from the float checkpoint, which is itself loaded or trained first.
    """

    def load(path: Path) -> torch.nn.Module:
        model, _ = checkpoint.load_fullycon(path, cfg.bits)
        log.info("loaded %s", path)
        return model

    def train(path: Path) -> torch.nn.Module:
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

    return checkpoint.load_or_train(cfg.name, ckpt_dir, load, train, retrain)


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
