"""The ``detector`` target: the MIMO detector (30x20 real BPSK): FullyCon (fixed or i.i.d.
channel) or DetNet (``--arch detnet --layers L``; fixed channel: its hardware is the exact ReLU
MLP form of :mod:`models.detector.detnet_hw`; i.i.d. channel: the streamed-channel model of
:mod:`models.detector.detnet_iid_hw`)."""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path

import numpy as np

from models.detector.config import ARCHS, QuantConfig
from qphy.errors import ConfigError
from qphy.targets import HostExtras, HwDefaults, Option, Target, register
from qphy.variants import Bits

#: Vectors checked in RTL by default (the main job's verdict).
DETECTOR_VECTORS = 10_000
#: DetNet's defaults where the user gives none: its training is ~10x costlier per step than
#: FullyCon's, and the 2L + 1 MVAUs of its MLP form are folded to fewer cycles per layer.
DETNET_DEFAULTS = {"float_steps": 6000, "qat_steps": 3000, "batch_size": 500}
#: The varying-channel DetNet's measured recipe (docs/detnet-iid.md, BER of the integer model
#: at 12 dB on 100,000 bits): the step mix 0.25 (exact in 4 bits) and 9,000 float steps, then
#: 800 QAT steps with the mixes frozen: 2.12e-3, against 4.87e-3 for DetNet's 0.1 and 3,000
#: float steps (3,000 QAT steps from that model did not reach 1e-2 by 13 dB).
DETNET_IID_DEFAULTS = {"float_steps": 9000, "qat_steps": 800, "batch_size": 500, "detnet_mix": 0.25}
DETNET_VECTORS = 2000
DETNET_TARGET_CYCLES = 1000


def snr_points(text: str) -> tuple[float, ...]:
    """``--snr-db``: ``"8,10,12"`` or ``"8:15"`` (every whole dB from 8 to 15), increasing.

    Raises:
        argparse.ArgumentTypeError: anything else (argparse prints it, exit 2).
    """
    try:
        if ":" in text:
            lo, hi = (float(p) for p in text.split(":"))
            if not hi - lo <= 100:
                raise ValueError("at most 100 dB wide")
            points = tuple(lo + i for i in range(int(hi - lo) + 1))
        else:
            points = tuple(float(p) for p in text.split(","))
        if not points or any(b <= a for a, b in pairwise(points)):
            raise ValueError("the points must increase")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want a list like 8,10,12 or a range like 8:15 ({exc})"
        ) from exc
    return points


@register
class Detector(Target):
    name = "detector"
    help = "MIMO detector (30 rx x 20 tx real BPSK): FullyCon or DetNet"
    options = (
        Option("--arch", "arch", choices=ARCHS, help="detector architecture (fullycon)"),
        Option("--layers", "layers", int, help="DetNet's unrolled layers (10)"),
        Option("--mix", "detnet_mix", float, help="DetNet's step mix (0.1; i.i.d. channel: 0.25)"),
        Option("--channel", "channel", choices=("fixed", "iid"), help="fixed Toeplitz-0.6 or iid"),
        Option("--float-steps", "float_steps", int, help="float training steps"),
        Option("--qat-steps", "qat_steps", int, help="QAT steps"),
        Option("--bits-per-snr", "eval_bits_per_snr", int, help="evaluation bits per SNR"),
        Option(
            "--snr-db",
            "eval_snr_db",
            snr_points,
            help="evaluation SNR points: 8,10,12 or a range 8:15 (8:13)",
        ),
    )

    def config(self, bits: Bits | None, **options) -> QuantConfig:
        if options.get("arch", "fullycon") == "detnet":
            iid = options.get("channel") == "iid"
            options = {**(DETNET_IID_DEFAULTS if iid else DETNET_DEFAULTS), **options}
        elif "layers" in options:
            raise ConfigError("--layers: for --arch detnet only (FullyCon has 4 hidden layers)")
        elif "detnet_mix" in options:
            raise ConfigError("--mix: for --arch detnet only (DetNet's step mix)")
        return QuantConfig(bits=bits, **options)

    def load_or_train(self, cfg: QuantConfig, ckpt_dir=None, retrain: bool = False):
        from models.detector.jobs import load_or_train

        return load_or_train(cfg, ckpt_dir, retrain)

    def golden_inputs(self, cfg: QuantConfig, model, n: int) -> np.ndarray:
        from models.detector.data import detection_config, golden_inputs
        from quant.recipes import INPUT_BITS

        if cfg.arch == "detnet" and cfg.channel == "iid":
            from models.detector import detnet_iid

            return detnet_iid.golden_inputs(cfg, model, n)

        in_scale = float(model.inp.act_quant.scale().detach().reshape(-1)[0])
        return golden_inputs(detection_config(cfg), n, in_scale, cfg.seed + 7, INPUT_BITS)

    def host(self, cfg: QuantConfig) -> HostExtras:
        return HostExtras(decision="sign")

    def hw_defaults(self, cfg: QuantConfig) -> HwDefaults:
        if cfg.arch == "detnet":
            return HwDefaults(vectors=DETNET_VECTORS, target_cycles=DETNET_TARGET_CYCLES)
        return HwDefaults(vectors=DETECTOR_VECTORS)

    def evaluate(self, cfg: QuantConfig, out_dir: Path, ckpt_dir=None) -> str:
        from models.detector.jobs import evaluate_detector

        if cfg.bits is None:
            raise ConfigError("evaluate needs a quantized variant (--bits wXaY)")
        res = evaluate_detector(cfg, Path(out_dir), ckpt_dir)
        _print_ber(res)
        return f"BER of {cfg.name} and the baselines: {Path(out_dir) / 'ber.json'}"


def _print_ber(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BER, {res['bits_simulated_per_snr']} bits per SNR ({res['channel']})")
    table.add_column("SNR dB", justify="right")
    for name in res["ber"]:
        table.add_column(name, justify="right")
    for i, snr in enumerate(res["snr_db"]):
        table.add_row(f"{snr:g}", *(f"{res['ber'][n][i]:.2e}" for n in res["ber"]))
    for level in ("1e-2", "1e-3"):
        at = res.get(f"snr_db_at_ber_{level}", {})
        table.add_row(f"@{level}", *(f"{at[n]:.2f} dB" if at.get(n) else "-" for n in res["ber"]))
    Console().print(table)
