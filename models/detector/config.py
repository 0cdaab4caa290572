"""QuantConfig: everything that decides how a detector is trained, quantized and evaluated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from qphy.config import reject_unknown_keys
from qphy.errors import ConfigError
from qphy.variants import Bits

#: Detector architectures of the ``detector`` target.
ARCHS = ("fullycon", "detnet")


@dataclass(frozen=True)
class QuantConfig:
    """Training and evaluation settings of a detector (FullyCon, or the fixed-channel DetNet).

    Attributes:
        arch: ``fullycon`` or ``detnet`` (DetNet with ``layers`` unrolled layers; its hardware
            form: fixed channel, the ReLU MLP of :mod:`.detnet_hw`; i.i.d. channel, the
            streamed-channel model of :mod:`.detnet_iid_hw`).
        layers: DetNet's unrolled layers (``detnet`` only).
        detnet_mix: DetNet's step ``x_l = mix * new + (1 - mix) * old`` (``detnet`` only; 0.1
            in the paper, 0.25 the i.i.d. channel's default, see docs/detnet-iid.md).
        bits: Weight/activation widths of the QAT variant; None trains the float model.
        channel: ``fixed`` (the deterministic Toeplitz-0.6 30x20 channel) or ``iid``.
        train_snr_db_min: Lowest SNR (dB) sampled uniformly per training vector.
        train_snr_db_max: Highest SNR (dB) sampled uniformly per training vector.
        float_steps: Optimiser steps of float training (Adam, ``float_lr``).
        qat_steps: Optimiser steps of QAT fine-tuning from the float model (Adam, ``qat_lr``).
        batch_size: Vectors per step (1000 in the paper).
        float_lr: Adam learning rate of float training (1e-3 in the paper).
        qat_lr: Adam learning rate of QAT fine-tuning (1e-4 in the paper).
        per_channel_weights: Per-output-channel (instead of per-tensor) power-of-two weight scales.
        seed: Seed of every random draw (init, data).
        eval_snr_db: SNR points (dB) of the BER evaluation.
        eval_bits_per_snr: Transmitted bits simulated per SNR point in the evaluation.
        torch_threads: Intra-op threads of training. One: these matmuls are small, and on a
            2-core machine with any other load two threads ran ~10x slower than one.
    """

    bits: Bits | None = None
    arch: str = "fullycon"
    layers: int = 10
    detnet_mix: float = 0.1
    channel: str = "fixed"
    train_snr_db_min: float = 7.0
    train_snr_db_max: float = 14.0
    float_steps: int = 20000
    qat_steps: int = 8000
    batch_size: int = 1000
    float_lr: float = 1e-3
    qat_lr: float = 1e-4
    per_channel_weights: bool = True
    seed: int = 0
    eval_snr_db: tuple[float, ...] = field(default=(8.0, 9.0, 10.0, 11.0, 12.0, 13.0))
    eval_bits_per_snr: int = 200_000
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if self.channel not in ("fixed", "iid"):
            raise ConfigError(f"channel must be 'fixed' or 'iid', not '{self.channel}'")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, not '{self.arch}'")
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 1:
            raise ConfigError(f"layers must be a positive integer, got {self.layers!r}")
        mix = self.detnet_mix
        if isinstance(mix, bool) or not isinstance(mix, int | float) or not 0.0 < mix <= 1.0:
            raise ConfigError(f"detnet_mix must lie in (0, 1], got {self.detnet_mix!r}")
        if self.train_snr_db_min > self.train_snr_db_max:
            raise ConfigError("train_snr_db_min must not exceed train_snr_db_max")
        for name in ("float_steps", "qat_steps", "batch_size", "eval_bits_per_snr"):
            if getattr(self, name) < 0 or (name == "batch_size" and self.batch_size == 0):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.eval_snr_db:
            raise ConfigError("eval_snr_db must list at least one SNR")

    @property
    def name(self) -> str:
        """Variant name, e.g. ``fullycon_w4a4_fixed`` or ``detnet_l10_w4a4_fixed``:
        architecture (and depth), widths, channel."""
        arch = f"detnet_l{self.layers}" if self.arch == "detnet" else self.arch
        return f"{arch}_{self.bits.tag if self.bits else 'float'}_{self.channel}"

    def to_json(self) -> dict:
        d = asdict(self)
        d["bits"] = self.bits.tag if self.bits else None
        d["eval_snr_db"] = list(self.eval_snr_db)
        return d

    @classmethod
    def from_json(cls, data: dict) -> QuantConfig:
        """Build from a dict; unknown keys are a ConfigError."""
        from qphy.variants import parse_bits

        reject_unknown_keys(cls, data, "quant config")
        d = dict(data)
        if d.get("bits") is not None:
            d["bits"] = parse_bits(d["bits"])
        if "eval_snr_db" in d:
            d["eval_snr_db"] = tuple(float(s) for s in d["eval_snr_db"])
        return cls(**d)
