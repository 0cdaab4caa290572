"""The ``csi-encoder`` target: CsiNet+, ConvCsiNet, ConvSquCsiNet encoders (the UE side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.csi.csinet import ARCHS, CODEWORD_SIZES, Centre
from models.csi.jobs import CsiConfig
from models.csi.qat import FIRE_EXPAND
from qphy.contracts import HostOp
from qphy.defaults import SYMBOL_120KHZ_US
from qphy.fsutil import atomic_write_json
from qphy.targets import HostExtras, HwDefaults, Option, Target, register
from qphy.variants import Bits

#: The part with room for CsiNet+'s 2048 x 512 layer (ZCU104).
CSI_FPGA_PART = "xczu7ev-ffvc1156-2-e"
#: Cycles-per-frame folding target per architecture (the input stream alone takes 1024 beats).
#: Measured in RTL simulation, these keep all three CR 4 encoders within one OFDM symbol at
#: 120 kHz (README, "CSI-feedback encoders").
CSI_TARGET_CYCLES = {"csinetplus": 1444, "convcsinet": 1156, "convsqucsinet": 1156}


@register
class CsiEncoder(Target):
    name = "csi-encoder"
    help = "CSI-feedback encoder (CsiNet+, ConvCsiNet, ConvSquCsiNet)"
    options = (
        Option("--arch", "arch", choices=ARCHS, help="csi-encoder architecture"),
        Option("--cr", "cr", int, choices=sorted(CODEWORD_SIZES), help="compression ratio"),
        Option("--scenario", "scenario", choices=("indoor", "outdoor"), help="CSI data set"),
        Option("--codeword-bits", "codeword_bits", int, help="bits per codeword element (8)"),
        Option("--float-steps", "float_steps", int, help="float training steps"),
        Option("--qat-steps", "qat_steps", int, help="QAT steps"),
        Option(
            "--fire-expand",
            "fire_expand",
            choices=FIRE_EXPAND,
            help="ConvSquCsiNet fire modules: one merged 3x3 conv (default) or a real concat",
        ),
    )

    def config(self, bits: Bits | None, **options) -> CsiConfig:
        return CsiConfig(bits=bits, **options)

    def load_or_train(self, cfg: CsiConfig, ckpt_dir=None, retrain: bool = False):
        from models.csi.jobs import load_or_train

        return load_or_train(cfg, ckpt_dir, retrain=retrain)[0]

    def hw_model(self, model):
        return model.encoder

    def golden_inputs(self, cfg: CsiConfig, model, n: int) -> np.ndarray:
        """Centred test-set CSI (cycled when ``n`` exceeds the test set): real data, and every
        fourth vector or so saturates the 8-bit input quantizer at gain 16."""
        from models.csi.jobs import datasets

        *_, test_x = datasets(cfg, need_train=False)
        idx = np.arange(n) % len(test_x)
        return Centre()(test_x[idx]).numpy().astype(np.float32)

    def host(self, cfg: CsiConfig) -> HostExtras:
        c = Centre()
        return HostExtras(input_pre=[HostOp("Sub", c.offset), HostOp("Mul", c.gain)])

    def hw_defaults(self, cfg: CsiConfig) -> HwDefaults:
        return HwDefaults(
            fpga_part=CSI_FPGA_PART,
            target_cycles=CSI_TARGET_CYCLES[cfg.arch],
            folding_preference="latency",
            fifo_sizing="none",
            budget_us=SYMBOL_120KHZ_US,
            vectors=1000,
        )

    def train(self, cfg: CsiConfig, ckpt_dir=None) -> str:
        from models.csi.jobs import train

        _, meta = train(cfg, ckpt_dir)
        return f"{meta['variant']}: test NMSE {meta['test_nmse_db']:.2f} dB"

    def evaluate(self, cfg: CsiConfig, out_dir: Path, ckpt_dir=None) -> str:
        from models.csi.jobs import evaluate

        res = evaluate(cfg, ckpt_dir)
        atomic_write_json(Path(out_dir) / "nmse.json", res)
        return (
            f"{res['variant']}: NMSE float {res['nmse_db']['float']:.2f} dB, quantized "
            f"{res['nmse_db']['quant']:.2f} dB on {res['test_samples']} test samples"
        )

    def verdict_figures(self, extras: dict) -> str:
        nmse = extras.get("nmse_db")
        if not nmse:
            return ""
        return (
            f"NMSE float {nmse['float']:.2f} dB, quantized {nmse['quant']:.2f} dB, codeword "
            f"{extras['codeword_bits']} bits x {extras['codeword_size']}"
        )

    def report_extras(self, cfg: CsiConfig, ckpt_dir=None) -> dict:
        from models.csi.jobs import evaluate

        res = evaluate(cfg, ckpt_dir)
        keys = ("nmse_db", "codeword_bits", "codeword_size", "feedback_bits")
        return {
            **{k: res[k] for k in keys},
            "encoder_params": res["encoder_params"],
            "encoder_flops": res["encoder_flops"],
        }
