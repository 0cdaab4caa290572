"""The detector's quant-stage jobs: train-or-load and BER evaluation (the detector target's)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from models.detector.config import QuantConfig
from models.detector.evaluate import evaluate_ber, snr_at_ber, write_ber
from models.detector.fullycon import FullyCon, FullyConShape
from models.detector.qat import QuantFullyCon
from models.detector.train import train_float, train_qat
from qphy.errors import CheckpointError
from qphy.variants import Bits, parse_bits, variant_name
from quant import checkpoint
from quant.recipes import Recipe

log = logging.getLogger(__name__)
#: (checkpoint, differing settings) already warned about in this process.
_WARNED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class _Arch:
    """How one detector architecture is trained, saved and loaded (float and QAT)."""

    load: Callable[[QuantConfig, Path], tuple[torch.nn.Module, dict]]
    train_float: Callable[[QuantConfig], tuple[torch.nn.Module, float]]
    train_qat: Callable[[QuantConfig, torch.nn.Module], tuple[torch.nn.Module, float]]
    meta: Callable[[QuantConfig, torch.nn.Module, float], dict]


def _fullycon_meta(cfg: QuantConfig, model: torch.nn.Module, loss: float) -> dict:
    return fullycon_meta(
        model.shape,
        cfg.bits,
        model.recipe if cfg.bits is not None else None,
        channel=cfg.channel,
        final_train_loss=loss,
        train_config=cfg.to_json(),
    )


def fullycon_meta(shape: FullyConShape, bits: Bits | None, recipe: Recipe | None, **extra) -> dict:
    meta = {
        "arch": "fullycon",
        "variant": variant_name("fullycon", bits),
        "bits": bits.tag if bits else None,
        "shape": asdict(shape),
        "per_channel_weights": bool(recipe.per_channel_weights) if recipe else None,
    }
    meta.update(extra)
    return meta


def load_fullycon(path: Path, bits: Bits | None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a float (bits=None) or QAT FullyCon from a checkpoint and check it fits."""
    path = Path(path)
    payload = checkpoint.read(path, f"qphy train detector --bits {bits.tag if bits else 'float'}")
    meta = payload["meta"]
    want = bits.tag if bits else None
    if meta.get("arch") != "fullycon" or meta.get("bits") != want:
        raise CheckpointError(
            f"{path} holds {meta.get('variant')}, not {variant_name('fullycon', bits)}"
        )
    shape = FullyConShape(**meta["shape"])
    if bits is None:
        model: torch.nn.Module = FullyCon(shape)
    else:
        recipe = Recipe(parse_bits(meta["bits"]), per_channel_weights=meta["per_channel_weights"])
        model = QuantFullyCon(recipe, shape)
    checkpoint.load_state(model, payload, path, meta["variant"])
    return model, meta


#: The settings that decide a float checkpoint's weights.
FLOAT_SETTINGS = (
    "detnet_mix",
    "float_steps",
    "float_lr",
    "batch_size",
    "train_snr_db_min",
    "train_snr_db_max",
    "seed",
)
#: The settings that decide a QAT checkpoint's weights.
TRAINING_SETTINGS = (*FLOAT_SETTINGS, "qat_steps", "qat_lr")


def trained_otherwise(cfg: QuantConfig, meta: dict) -> dict[str, tuple]:
    """The training settings in which a checkpoint (its recorded config in ``meta``) differs
    from ``cfg``, as ``{name: (recorded, asked)}``; empty when none is recorded."""
    recorded = meta.get("qphy_config") or meta.get("train_config") or {}
    names = TRAINING_SETTINGS if cfg.bits is not None else FLOAT_SETTINGS
    return {
        name: (recorded[name], getattr(cfg, name))
        for name in names
        if name in recorded and recorded[name] != getattr(cfg, name)
    }


def _arch(cfg: QuantConfig) -> _Arch:
    if cfg.arch == "detnet" and cfg.channel == "iid":
        from models.detector import detnet_iid  # noqa: PLC0415

        return _Arch(detnet_iid.load, detnet_iid.train_float, detnet_iid.train_qat, detnet_iid.meta)
    if cfg.arch == "detnet":
        from models.detector import detnet_hw  # noqa: PLC0415

        return _Arch(detnet_hw.load, detnet_hw.train_float, detnet_hw.train_qat, detnet_hw.meta)
    return _Arch(
        lambda c, path: load_fullycon(path, c.bits),
        lambda c: train_float(c, FullyConShape()),
        train_qat,
        _fullycon_meta,
    )


def load_or_train(
    cfg: QuantConfig, ckpt_dir: Path | None = None, retrain: bool = False
) -> torch.nn.Module:
    """The model of ``cfg.bits`` (None: float) from its checkpoint, training it if absent.

    QAT starts from the float checkpoint, which is itself loaded or trained first. For
    ``arch == "detnet"`` the float model is a :class:`.detnet.DetNet` (inputs y and H)
    and the QAT model its fixed-channel MLP form (:mod:`models.detector.detnet_hw`).
    """
    arch = _arch(cfg)

    def load(path: Path) -> torch.nn.Module:
        model, meta = arch.load(cfg, path)
        log.info("loaded %s", path)
        differ = trained_otherwise(cfg, meta)
        settings = ", ".join(f"{k}={old} (asked {new})" for k, (old, new) in differ.items())
        if differ and (str(path), settings) not in _WARNED:  # once per file and difference
            _WARNED.add((str(path), settings))
            log.warning(
                "%s was trained with %s; it is used as it is: `qphy train` (same options) "
                "retrains it, or give another --checkpoint-dir",
                path,
                settings,
            )
        return model

    def train(path: Path) -> torch.nn.Module:
        if cfg.bits is None:
            model, loss = arch.train_float(cfg)
        else:
            float_model = load_or_train(replace(cfg, bits=None), ckpt_dir, retrain=False)
            model, loss = arch.train_qat(cfg, float_model)
        checkpoint.save(model, path, arch.meta(cfg, model, loss))
        log.info("saved %s", path)
        return model

    return checkpoint.load_or_train(cfg.name, ckpt_dir, load, train, retrain)


def as_detector(cfg: QuantConfig, model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as a y -> soft-symbols detector: a float DetNet becomes its exact MLP form for
    the fixed channel (the same function, without H as an input)."""
    if cfg.arch == "detnet" and cfg.bits is None:
        from models.detector.detnet_hw import float_mlp

        return float_mlp(cfg, model)
    return model


def evaluate_detector(cfg: QuantConfig, out_dir: Path, ckpt_dir: Path | None = None) -> dict:
    """BER of float, the QAT variant and ZF/MMSE/ML; writes ber.json and ber.png."""
    if cfg.bits is None:
        raise ValueError("evaluate_detector needs the QAT bits")
    if cfg.arch == "detnet" and cfg.channel == "iid":
        from models.detector.detnet_iid import evaluate_detector as evaluate_iid  # noqa: PLC0415

        return evaluate_iid(cfg, out_dir, load_or_train, ckpt_dir)
    float_cfg = replace(cfg, bits=None)
    float_model = as_detector(float_cfg, load_or_train(float_cfg, ckpt_dir))
    qat_model = load_or_train(cfg, ckpt_dir)
    result = evaluate_ber(cfg, {"float": float_model, cfg.bits.tag: qat_model})
    result["channel"] = cfg.channel
    result["snr_db_at_ber_1e-3"] = {
        name: snr_at_ber(result["snr_db"], curve, 1e-3) for name, curve in result["ber"].items()
    }
    arch = f"DetNet L={cfg.layers}" if cfg.arch == "detnet" else "FullyCon"
    write_ber(result, Path(out_dir), f"{arch} {cfg.bits.tag}, {cfg.channel} 30x20 BPSK")
    return result
