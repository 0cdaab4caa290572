"""The ``fullycon-pruning`` experiment: magnitude pruning of the shipped float FullyCon,
fine-tuned with masks (registered in :mod:`experiments.registry` on import)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from experiments import kit
from experiments.registry import experiment
from quant.compress.masks import MaskCallback, magnitude_masks, sparsity, zero_weights


@dataclass(frozen=True)
class PruningGrid(kit.BerGrid):
    """Settings of ``fullycon-pruning`` (and :class:`~experiments.kit.BerGrid`'s).

    Attributes:
        thresholds: Magnitude thresholds t (|w| < t pruned, one global t); 0 is the control
            (fine-tuned like the others, nothing pruned).
        retrain_steps: Fine-tuning steps after pruning (masks held by MaskCallback).
    """

    thresholds: tuple[float, ...]
    retrain_steps: int


PRUNING_GRIDS = {
    "small": PruningGrid(
        thresholds=(0.025, 0.05), retrain_steps=20, batch_size=200, eval_bits_per_snr=20_000
    ),
    "full": PruningGrid(
        thresholds=(0.0, 0.010, 0.025, 0.050, 0.075, 0.100),
        retrain_steps=2000,
        batch_size=1000,
        eval_bits_per_snr=1_000_000,
    ),
}


@experiment(
    "fullycon-pruning",
    "magnitude pruning |w| < t of the shipped float FullyCon, fine-tuned with masks: "
    "% pruned, FLOPs, memory, BER 8..13 dB",
)
def fullycon_pruning(out_dir: Path, grid: str, overrides: dict) -> dict:
    st = kit.fullycon_study(
        "fullycon-pruning", PruningGrid, PRUNING_GRIDS, out_dir, grid, overrides
    )
    s = st.s

    def pruned(t: float, key: str) -> dict:
        model = copy.deepcopy(st.load())
        masks = magnitude_masks(model, t)
        row = st.finetuned(
            model,
            key,
            steps=s.retrain_steps,
            callbacks=[MaskCallback(masks)],
            description=f"retrain {key}",
        )
        zeros = dict(zero_weights(model))
        held = all(bool(zeros[n][~m].all()) for n, m in masks.items())
        return {"threshold": t, "mask_pruned_fraction": sparsity(masks), "masks_held": held, **row}

    rows, computed = st.run(
        st.sweep(
            lambda: {"threshold": None, **st.measure(st.load(), "float", with_mmse=True)},
            s.thresholds,
            lambda t: f"t{t:.3f}",
            lambda t: {"threshold": t, "retrain_steps": s.retrain_steps},
            pruned,
            reference_key="shipped",
        )
    )
    ref = kit.mark_no_ber_loss(rows)
    for row in rows:
        row["max_ber_ratio"] = max(
            (b / r if r > 0 else float("inf") if b > 0 else 1.0)
            for b, r in zip(row["ber"], ref["ber"], strict=True)
        )
    best = [r for r in rows[1:] if r["no_ber_loss"]]
    summary = st.summary(
        rows,
        computed,
        no_ber_loss_rule="pruned BER - shipped BER <= 2 standard errors at every SNR",
        max_pruned_without_ber_loss=max(
            (r["account"]["pruned_fraction"] for r in best), default=0.0
        ),
    )
    summary["target_met"] = summary["max_pruned_without_ber_loss"] >= 0.5
    table = kit.ber_table(
        rows,
        summary["snr_db"],
        [
            ("variant", lambda r: r["key"]),
            ("pruned %", lambda r: f"{100 * r['account']['pruned_fraction']:.1f}"),
            ("non-zero", lambda r: f"{r['account']['nonzero_weights']}"),
            ("FLOPs/frame", lambda r: f"{r['account']['flops_per_frame']}"),
            ("memory kbit", lambda r: kit.kbit(r["account"]["memory_bits"])),
        ],
        [("no BER loss", lambda r: kit.yes_no(r["no_ber_loss"]))],
    )
    return st.publish(
        summary,
        table,
        f"Shipped float FullyCon, fixed 30x20 BPSK channel; magnitude pruning |w| < t (global t, "
        f"weights only), then {s.retrain_steps} fine-tuning steps (Adam lr {s.lr:g}, batch "
        f"{s.batch_size}) with the masks re-applied after every step. BER on "
        f"{rows[0]['bits_per_snr']} bits per SNR (same vectors for every row). FLOPs per frame: "
        f"each add and multiply one FLOP, zeros skipped. Memory: per layer min(dense 32-bit, "
        f"CSR: 32-bit value + ceil(log2(fan_in))-bit column index per non-zero, "
        f"(rows+1) ceil(log2(nnz+1))-bit row pointers), plus 32-bit biases. 'no BER loss': "
        f"{summary['no_ber_loss_rule']}.",
        after=f"\nMost weights pruned without BER loss: "
        f"{100 * summary['max_pruned_without_ber_loss']:.1f} % (target >= 50 %: "
        f"{'met' if summary['target_met'] else 'not met'}).\n",
        plot_title="FullyCon pruning",
    )
