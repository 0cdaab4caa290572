"""The ``fullycon-distillation`` experiment: smaller w4a4 QAT FullyCon students trained with and
without the shipped float FullyCon as teacher (registered in :mod:`experiments.registry`
on import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from experiments import kit
from experiments.registry import experiment
from models.detector.fullycon import FullyConShape
from qphy.variants import Bits
from quant.compress.distill import Distillation

#: Seed of the students' initial weights: the same for the runs with and without teacher.
INIT_SEED = 0


@dataclass(frozen=True)
class DistillationGrid(kit.BerGrid):
    """Settings of ``fullycon-distillation`` (and :class:`~experiments.kit.BerGrid`'s).

    Attributes:
        widths: Hidden widths of the students (the teacher's is 200).
        steps: Training steps of every student, from random initialisation.
        weight_bits: Students' weight width.
        act_bits: Students' activation width.
        alpha: Weight of the distillation term (loss = MSE to symbols + alpha * MSE to teacher).
        lr: Adam learning rate (students start from scratch: the float training's 1e-3).
    """

    widths: tuple[int, ...]
    steps: int
    weight_bits: int = 4
    act_bits: int = 4
    alpha: float = 1.0
    lr: float = field(default=1e-3, kw_only=True)


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

    st = kit.fullycon_study(
        "fullycon-distillation", DistillationGrid, DISTILL_GRIDS, out_dir, grid, overrides
    )
    s, load = st.s, st.load
    bits = Bits(s.weight_bits, s.act_bits)

    def student(width: int, with_teacher: bool, key: str) -> dict:
        torch.manual_seed(INIT_SEED)
        shape = FullyConShape(
            n_rx=load().shape.n_rx,
            k_tx=load().shape.k_tx,
            hidden=width,
            n_hidden_layers=load().shape.n_hidden_layers,
        )
        model = QuantFullyCon(Recipe(bits), shape)
        callbacks = [Distillation(load(), s.alpha)] if with_teacher else []
        return {
            "width": width,
            "teacher": "float FullyCon 200" if with_teacher else None,
            **st.finetuned(model, key, steps=s.steps, callbacks=callbacks),
        }

    def own(v: tuple[int, bool]) -> dict:
        width, with_teacher = v
        return {
            "width": width,
            "bits": bits.tag,
            "teacher": with_teacher,
            "alpha": s.alpha if with_teacher else 0.0,
            "steps": s.steps,
            "init_seed": INIT_SEED,
        }

    rows, computed = st.run(
        st.sweep(
            lambda: {
                "width": load().shape.hidden,
                "teacher": None,
                **st.measure(load(), "teacher"),
            },
            [(width, with_teacher) for width in s.widths for with_teacher in (False, True)],
            lambda v: f"h{v[0]}_{bits.tag}_{'kd' if v[1] else 'alone'}",
            own,
            lambda v, key: student(*v, key),
            reference_key="teacher",
            reference_point="shipped float, the teacher",
        )
    )
    summary = st.summary(
        rows,
        computed,
        start=None,
        teacher="quant/checkpoints/fullycon_float_fixed.pt (shipped float, hidden 200)",
    )
    table = kit.ber_table(
        rows,
        summary["snr_db"],
        [
            ("variant", lambda r: r["key"]),
            ("hidden", lambda r: str(r["width"])),
            ("teacher", lambda r: "-" if r["key"] == "teacher" else kit.yes_no(r["teacher"])),
            ("weights", lambda r: str(r["account"]["weights"])),
            ("memory kbit", lambda r: kit.kbit(r["account"]["dense_memory_bits"])),
        ],
    )
    return st.publish(
        summary,
        table,
        f"Students: {bits.tag} QAT FullyCon (quant.recipes) with 4 hidden layers of the given "
        f"width, random init (seed {INIT_SEED}, the same with and without teacher), "
        f"{s.steps} steps (Adam lr {s.lr:g}, batch {s.batch_size}, the same data). 'kd': loss "
        f"= MSE to the symbols + {s.alpha:g} x MSE to the outputs of the teacher (the shipped "
        f"float FullyCon, hidden 200, frozen). Memory: dense weights x {s.weight_bits} bits + "
        f"32-bit biases (teacher: 32-bit). BER on {rows[0]['bits_per_snr']} bits per SNR, fixed "
        f"30x20 BPSK channel (same vectors for every row).",
        plot_title="FullyCon KD",
    )
