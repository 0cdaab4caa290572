"""The ``fullycon-distillation`` experiment: smaller w4a4 QAT FullyCon students trained with and
without the shipped float FullyCon as teacher (registered in :mod:`experiments.registry`
on import)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import kit
from experiments.registry import experiment
from models.detector.finetune import finetune
from models.detector.fullycon import FullyConShape
from qphy.variants import Bits
from quant.compress.distill import Distillation

#: Seed of the students' initial weights: the same for the runs with and without teacher.
INIT_SEED = 0


@dataclass(frozen=True)
class DistillationGrid:
    """Settings of ``fullycon-distillation``.

    Attributes:
        widths: Hidden widths of the students (the teacher's is 200).
        steps: Training steps of every student, from random initialisation.
        weight_bits: Students' weight width.
        act_bits: Students' activation width.
        alpha: Weight of the distillation term (loss = MSE to symbols + alpha * MSE to teacher).
        lr: Adam learning rate (students start from scratch: the float training's 1e-3).
        batch_size: Vectors per step.
        eval_bits_per_snr: Bits simulated per SNR point (8..13 dB).
    """

    widths: tuple[int, ...]
    steps: int
    weight_bits: int = 4
    act_bits: int = 4
    alpha: float = 1.0
    lr: float = 1e-3
    batch_size: int = 1000
    eval_bits_per_snr: int = 1_000_000


DISTILL_GRIDS = {
    "small": DistillationGrid(widths=(50,), steps=10, batch_size=200, eval_bits_per_snr=20_000),
    "full": DistillationGrid(widths=(50, 100), steps=1500),
}


@experiment(
    "fullycon-distillation",
    "smaller w4a4 QAT FullyCon students (hidden 50, 100) trained with and without the shipped "
    "float FullyCon as teacher (loss + alpha * MSE to the teacher's outputs)",
)
def fullycon_distillation(out_dir: Path, grid: str, overrides: dict) -> dict:
    from models.detector.qat import QuantFullyCon  # noqa: PLC0415
    from quant.recipes import Recipe  # noqa: PLC0415

    s, console, cfg, common, load = kit.fullycon_setup(
        DistillationGrid, DISTILL_GRIDS, grid, overrides
    )
    bits = Bits(s.weight_bits, s.act_bits)

    def teacher_point() -> dict:
        return {
            "width": load().shape.hidden,
            "teacher": None,
            **kit.measure(cfg, load(), "teacher"),
        }

    def student_point(width: int, with_teacher: bool, key: str) -> Callable[[], dict]:
        def compute() -> dict:
            torch.manual_seed(INIT_SEED)
            shape = FullyConShape(
                n_rx=load().shape.n_rx,
                k_tx=load().shape.k_tx,
                hidden=width,
                n_hidden_layers=load().shape.n_hidden_layers,
            )
            model = QuantFullyCon(Recipe(bits), shape)
            callbacks = [Distillation(load(), s.alpha)] if with_teacher else []
            fitres = finetune(
                model,
                cfg,
                steps=s.steps,
                lr=s.lr,
                callbacks=callbacks,
                seed=kit.FINETUNE_SEED,
                description=key,
            )
            return {
                "width": width,
                "teacher": "float FullyCon 200" if with_teacher else None,
                "final_train_loss": fitres.mean_recent_loss,
                **kit.measure(cfg, model, key),
            }

        return compute

    points = [("teacher", {**common, "point": "shipped float, the teacher"}, teacher_point)]
    for width in s.widths:
        for with_teacher in (False, True):
            key = f"h{width}_{bits.tag}_{'kd' if with_teacher else 'alone'}"
            settings = {
                **common,
                "width": width,
                "bits": bits.tag,
                "teacher": with_teacher,
                "alpha": s.alpha if with_teacher else 0.0,
                "steps": s.steps,
                "lr": s.lr,
                "batch_size": s.batch_size,
                "init_seed": INIT_SEED,
                "finetune_seed": kit.FINETUNE_SEED,
            }
            points.append((key, settings, student_point(width, with_teacher, key)))
    rows, computed = kit.run("fullycon-distillation", out_dir, points, console)
    summary = kit.summary(
        "fullycon-distillation",
        grid,
        s,
        cfg.eval_snr_db,
        rows,
        computed,
        start=None,
        teacher="quant/checkpoints/fullycon_float_fixed.pt (shipped float, hidden 200)",
    )
    header = ["variant", "hidden", "teacher", "weights", "memory kbit"]
    header += [f"BER {x:g} dB" for x in summary["snr_db"]]
    table = [
        [
            r["key"],
            str(r["width"]),
            "-" if r["key"] == "teacher" else ("yes" if r["teacher"] else "no"),
            str(r["account"]["weights"]),
            f"{r['account']['dense_memory_bits'] / 1000:.1f}",
            *kit.ber_cells(r),
        ]
        for r in rows
    ]
    return kit.publish(
        out_dir,
        summary,
        header,
        table,
        console,
        f"Students: {bits.tag} QAT FullyCon (quant.recipes) with 4 hidden layers of the given "
        f"width, random init (seed {INIT_SEED}, the same with and without teacher), "
        f"{s.steps} steps (Adam lr {s.lr:g}, batch {s.batch_size}, the same data). 'kd': loss "
        f"= MSE to the symbols + {s.alpha:g} x MSE to the outputs of the teacher (the shipped "
        f"float FullyCon, hidden 200, frozen). Memory: dense weights x {s.weight_bits} bits + "
        f"32-bit biases (teacher: 32-bit). BER on {rows[0]['bits_per_snr']} bits per SNR, fixed "
        f"30x20 BPSK channel (same vectors for every row).",
        plot_title="FullyCon KD",
    )
