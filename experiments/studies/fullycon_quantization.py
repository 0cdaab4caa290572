"""The ``fullycon-quantization`` experiment: QAT fine-tunes of the shipped float FullyCon with
B-bit weights (registered in :mod:`experiments.registry` on import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments import kit
from experiments.registry import experiment
from qphy.variants import Bits
from quant.compress.accounting import FLOAT_BITS


@dataclass(frozen=True)
class QuantizationGrid(kit.BerGrid):
    """Settings of ``fullycon-quantization`` (and :class:`~experiments.kit.BerGrid`'s).

    Attributes:
        weight_bits: Weight widths B of the QAT fine-tunes (activations ``act_bits``).
        qat_steps: QAT fine-tuning steps from the shipped float model.
        act_bits: Activation width (ReLU outputs) of every variant.
    """

    weight_bits: tuple[int, ...]
    qat_steps: int
    act_bits: int = 8


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
    st = kit.fullycon_study(
        "fullycon-quantization", QuantizationGrid, QUANT_GRIDS, out_dir, grid, overrides
    )
    s = st.s

    def qat(b: int, key: str) -> dict:
        model = kit.qat_start(st.load(), Bits(b, s.act_bits))
        return {"weight_bits": b, **st.finetuned(model, key, steps=s.qat_steps)}

    rows, computed = st.run(
        st.sweep(
            lambda: {"weight_bits": FLOAT_BITS, **st.measure(st.load(), "float")},
            s.weight_bits,
            lambda b: f"w{b}a{s.act_bits}",
            lambda b: {"weight_bits": b, "act_bits": s.act_bits, "qat_steps": s.qat_steps},
            qat,
        )
    )
    ref = kit.mark_no_ber_loss(rows)
    dense_float = ref["account"]["dense_memory_bits"]
    for row in rows:
        row["memory_saved_vs_float32"] = 1.0 - row["account"]["dense_memory_bits"] / dense_float
    summary = st.summary(
        rows, computed, no_ber_loss_rule="QAT BER - float BER <= 2 standard errors at every SNR"
    )
    table = kit.ber_table(
        rows,
        summary["snr_db"],
        [
            ("variant", lambda r: r["key"]),
            ("weight bits", lambda r: str(r["weight_bits"])),
            ("memory kbit", lambda r: kit.kbit(r["account"]["dense_memory_bits"])),
            ("saved vs fp32 %", lambda r: f"{100 * r['memory_saved_vs_float32']:.1f}"),
        ],
        [("no BER loss", lambda r: kit.yes_no(r["no_ber_loss"]))],
    )
    return st.publish(
        summary,
        table,
        f"QAT fine-tune of the shipped float FullyCon with B-bit per-channel power-of-two weights "
        f"and {s.act_bits}-bit activations (quant.recipes), {s.qat_steps} steps (Adam lr "
        f"{s.lr:g}, batch {s.batch_size}). Memory: dense weights x B bits + 32-bit biases, vs "
        f"all 32-bit. BER on {ref['bits_per_snr']} bits per SNR, fixed 30x20 BPSK channel.",
        plot_title="FullyCon QAT",
    )
