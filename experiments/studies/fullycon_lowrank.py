"""The ``fullycon-lowrank`` experiment: truncated-SVD factorisation of the shipped float
FullyCon's hidden-to-hidden layers at rank r, fine-tuned (registered in
:mod:`experiments.registry` on import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments import kit
from experiments.registry import experiment
from models.detector.lowrank import factorize, hidden_ranks


@dataclass(frozen=True)
class LowRankGrid(kit.BerGrid):
    """Settings of ``fullycon-lowrank`` (and :class:`~experiments.kit.BerGrid`'s).

    Attributes:
        ranks: Ranks r of the factorised hidden-to-hidden (200x200) layers; the input and
            output layers stay dense.
        finetune_steps: Fine-tuning steps after the factorisation.
    """

    ranks: tuple[int, ...]
    finetune_steps: int


LOWRANK_GRIDS = {
    "small": LowRankGrid(ranks=(20,), finetune_steps=10, batch_size=200, eval_bits_per_snr=20_000),
    "full": LowRankGrid(ranks=(10, 20, 50, 100), finetune_steps=2000),
}


@experiment(
    "fullycon-lowrank",
    "truncated-SVD rank-r factorisation of the shipped float FullyCon's 200x200 layers, "
    "fine-tuned: weights, FLOPs, BER 8..13 dB",
)
def fullycon_lowrank(out_dir: Path, grid: str, overrides: dict) -> dict:
    st = kit.fullycon_study(
        "fullycon-lowrank", LowRankGrid, LOWRANK_GRIDS, out_dir, grid, overrides
    )
    s = st.s

    def factorised(r: int, key: str) -> dict:
        ranks = hidden_ranks(st.load(), r)
        model = factorize(st.load(), ranks)
        before = kit.ber_curve(st.cfg, model, key)
        return {
            "rank": r,
            "factorised_layers": sorted(ranks),
            "ber_before_finetune": before,
            **st.finetuned(model, key, steps=s.finetune_steps),
        }

    rows, computed = st.run(
        st.sweep(
            lambda: {"rank": None, "factorised_layers": [], **st.measure(st.load(), "float")},
            s.ranks,
            lambda r: f"rank{r}",
            lambda r: {"rank": r, "layers": "hidden-to-hidden", "finetune_steps": s.finetune_steps},
            factorised,
        )
    )
    ref = rows[0]["account"]
    for row in rows:
        row["weights_fraction"] = row["account"]["weights"] / ref["weights"]
    summary = st.summary(rows, computed)
    snr = summary["snr_db"]
    i11 = snr.index(11.0) if 11.0 in snr else len(snr) // 2
    table = kit.ber_table(
        rows,
        snr,
        [
            ("variant", lambda r: r["key"]),
            ("rank", lambda r: "-" if r["rank"] is None else str(r["rank"])),
            ("weights", lambda r: str(r["account"]["weights"])),
            ("weights %", lambda r: f"{100 * r['weights_fraction']:.1f}"),
            ("FLOPs/frame", lambda r: str(r["account"]["flops_per_frame"])),
            ("memory kbit", lambda r: kit.kbit(r["account"]["memory_bits"])),
            (
                f"BER {snr[i11]:g} dB before FT",
                lambda r: (
                    f"{r['ber_before_finetune'][i11]:.2e}" if "ber_before_finetune" in r else "-"
                ),
            ),
        ],
    )
    return st.publish(
        summary,
        table,
        f"Shipped float FullyCon, fixed 30x20 BPSK channel. Each 200x200 hidden-to-hidden layer "
        f"replaced by Linear(200, r, no bias) -> Linear(r, 200) from its truncated SVD "
        f"(sqrt(S) split to both factors); input and output layers dense. Then "
        f"{s.finetune_steps} fine-tuning steps (Adam lr {s.lr:g}, batch {s.batch_size}). "
        f"Weights and FLOPs per frame count both factors (2 FLOPs per weight); memory is "
        f"32-bit weights and biases. 'before FT': truncation only. BER on "
        f"{rows[0]['bits_per_snr']} bits per SNR (same vectors for every row).",
        plot_title="FullyCon low-rank",
    )
