"""The ``fullycon-quantization`` experiment: QAT fine-tunes of the shipped float FullyCon with
B-bit weights (registered in :mod:`experiments.registry` on import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import kit
from experiments.registry import experiment
from models.detector.finetune import finetune, no_ber_loss
from qphy.variants import Bits
from quant.compress.accounting import FLOAT_BITS


@dataclass(frozen=True)
class QuantizationGrid:
    """Settings of ``fullycon-quantization``.

    Attributes:
        weight_bits: Weight widths B of the QAT fine-tunes (activations ``act_bits``).
        act_bits: Activation width (ReLU outputs) of every variant.
        qat_steps: QAT fine-tuning steps from the shipped float model.
        lr: QAT learning rate.
        batch_size: Vectors per QAT step.
        eval_bits_per_snr: Bits simulated per SNR point (8..13 dB).
    """

    weight_bits: tuple[int, ...]
    qat_steps: int
    act_bits: int = 8
    lr: float = 1e-4
    batch_size: int = 1000
    eval_bits_per_snr: int = 1_000_000


QUANT_GRIDS = {
    "small": QuantizationGrid(
        weight_bits=(4,), qat_steps=40, batch_size=200, eval_bits_per_snr=20_000
    ),
    "full": QuantizationGrid(weight_bits=(3, 4, 5, 6, 7, 8, 9), qat_steps=1000, batch_size=1000),
}


@experiment(
    "fullycon-quantization",
    "QAT fine-tunes of the shipped float FullyCon with B-bit weights: BER, memory saved vs 32-bit",
)
def fullycon_quantization(out_dir: Path, grid: str, overrides: dict) -> dict:
    from models.detector.qat import QuantFullyCon  # noqa: PLC0415
    from quant.recipes import Recipe  # noqa: PLC0415

    s, console, cfg, common, load = kit.fullycon_setup(
        QuantizationGrid, QUANT_GRIDS, grid, overrides
    )

    def float_point() -> dict:
        return {"weight_bits": FLOAT_BITS, **kit.measure(cfg, load(), "float")}

    def qat_point(b: int, key: str) -> Callable[[], dict]:
        def compute() -> dict:
            torch.manual_seed(0)
            model = QuantFullyCon(Recipe(Bits(b, s.act_bits)), load().shape)
            model.load_float(load())
            fitres = finetune(
                model, cfg, steps=s.qat_steps, lr=s.lr, seed=kit.FINETUNE_SEED, description=key
            )
            return {
                "weight_bits": b,
                "final_train_loss": fitres.mean_recent_loss,
                **kit.measure(cfg, model, key),
            }

        return compute

    points = [("float", {**common, "point": "shipped float, no fine-tuning"}, float_point)]
    for b in s.weight_bits:
        key = f"w{b}a{s.act_bits}"
        settings = kit.finetune_settings(
            common,
            s,
            weight_bits=b,
            act_bits=s.act_bits,
            qat_steps=s.qat_steps,
        )
        points.append((key, settings, qat_point(b, key)))
    rows, computed = kit.run("fullycon-quantization", out_dir, points, console)
    ref = rows[0]
    dense_float = ref["account"]["dense_memory_bits"]
    for row in rows:
        row["no_ber_loss"] = no_ber_loss(row["errors"], ref["errors"], ref["bits_per_snr"])
        row["memory_saved_vs_float32"] = 1.0 - row["account"]["dense_memory_bits"] / dense_float
    summary = kit.summary(
        "fullycon-quantization",
        grid,
        s,
        cfg.eval_snr_db,
        rows,
        computed,
        no_ber_loss_rule="QAT BER - float BER <= 2 standard errors at every SNR",
    )
    header = ["variant", "weight bits", "memory kbit", "saved vs fp32 %"]
    header += [f"BER {x:g} dB" for x in summary["snr_db"]] + ["no BER loss"]
    table = [
        [
            r["key"],
            str(r["weight_bits"]),
            f"{r['account']['dense_memory_bits'] / 1000:.1f}",
            f"{100 * r['memory_saved_vs_float32']:.1f}",
            *kit.ber_cells(r),
            "yes" if r["no_ber_loss"] else "no",
        ]
        for r in rows
    ]
    return kit.publish(
        out_dir,
        summary,
        header,
        table,
        console,
        f"QAT fine-tune of the shipped float FullyCon with B-bit per-channel power-of-two weights "
        f"and {s.act_bits}-bit activations (quant.recipes), {s.qat_steps} steps (Adam lr "
        f"{s.lr:g}, batch {s.batch_size}). Memory: dense weights x B bits + 32-bit biases, vs "
        f"all 32-bit. BER on {ref['bits_per_snr']} bits per SNR, fixed 30x20 BPSK channel.",
        plot_title="FullyCon QAT",
    )
