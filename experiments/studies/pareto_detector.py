"""The ``pareto-detector`` experiment: bits x structured pruning x folding of FullyCon, each
point a real build (QAT fine-tune -> verified QONNX -> FINN -> Verilator verdict), tabulated as
BER at 12 dB against latency and estimated LUTs, with the Pareto front marked.

Every point starts from the shipped float FullyCon: QAT at ``w<B>a<A>`` with the strongest
``1 - fraction`` of every hidden layer's neurons kept (L1 ranking, held at zero during the
fine-tune, then physically removed by :func:`models.detector.structured.shrink`), built with
FINN folded to ``target_cycles`` per frame. BER on the experiments' shared vectors (fixed
30x20 channel); latency and cycles from the RTL simulation, LUT/BRAM/DSP from FINN's estimates.
Builds go to ``out_dir/builds/<key>`` (each a full qphy build directory with its report.json).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console

from experiments import kit
from experiments.registry import experiment
from models.detector.finetune import finetune

NAME = "pareto-detector"
#: The SNR (dB) of the BER axis.
PARETO_SNR_DB = 12.0


@dataclass(frozen=True)
class ParetoGrid:
    """Settings of ``pareto-detector``.

    Attributes:
        bits: ``wXaY`` tags of the QAT variants.
        prune_fractions: Fractions of every hidden layer's neurons removed.
        target_cycles: FINN folding targets (cycles per frame of the slowest layer).
        qat_steps: Fine-tuning steps from the shipped float model (lr ``lr``).
        lr: Fine-tuning learning rate.
        batch_size: Vectors per fine-tuning step.
        eval_bits_per_snr: Bits simulated per SNR (8..13 dB).
        vectors: Vectors checked in RTL per build.
        multiple_of: Kept neurons per layer rounded up to a multiple of this (FINN's PE must
            divide the layer width).
    """

    bits: tuple[str, ...]
    prune_fractions: tuple[float, ...]
    target_cycles: tuple[int, ...]
    qat_steps: int
    lr: float = 1e-4
    batch_size: int = 1000
    eval_bits_per_snr: int = 200_000
    vectors: int = 1000
    multiple_of: int = 8


GRIDS = {
    "small": ParetoGrid(
        bits=("w4a4",),
        prune_fractions=(0.75,),
        target_cycles=(64,),
        qat_steps=20,
        batch_size=200,
        eval_bits_per_snr=20_000,
        vectors=200,
    ),
    "full": ParetoGrid(
        bits=("w4a4", "w4a8", "w8a8"),
        prune_fractions=(0.0, 0.5),
        target_cycles=(200, 1000),
        qat_steps=1000,
    ),
}


def _model(s: ParetoGrid, bits: str, fraction: float) -> torch.nn.Module:
    """The QAT FullyCon of ``bits`` with ``fraction`` of its hidden neurons removed."""
    from models.detector.structured import ZeroNeurons, neuron_masks, shrink  # noqa: PLC0415
    from qphy.variants import parse_bits  # noqa: PLC0415

    model = kit.qat_start(kit.shipped_float(), parse_bits(bits))
    callbacks = []
    keep = None
    if fraction > 0:
        keep = neuron_masks(model, fraction, multiple_of=s.multiple_of)
        callbacks.append(ZeroNeurons(keep))
    cfg = kit.eval_cfg(s.batch_size, s.eval_bits_per_snr)
    finetune(
        model,
        cfg,
        steps=s.qat_steps,
        lr=s.lr,
        callbacks=callbacks,
        seed=kit.FINETUNE_SEED,
        description=f"{bits} pruned {fraction:g}",
    )
    return shrink(model, keep) if keep is not None else model


def _pareto(rows: list[dict]) -> None:
    """Marks rows no other row beats on BER, latency and LUT at once (``pareto``)."""
    axes = ("ber_at_12db", "latency_us", "LUT")
    for r in rows:
        r["pareto"] = not any(
            all(o[a] <= r[a] for a in axes) and any(o[a] < r[a] for a in axes)
            for o in rows
            if o is not r
        )


@experiment(NAME, "FullyCon bits x structured pruning x folding: BER@12dB vs latency vs LUT")
def pareto_detector(out_dir: Path, grid: str, overrides: dict) -> dict:
    from experiments.hardware import build_detector, hardware_row  # noqa: PLC0415
    from hw.config import HwBuildConfig  # noqa: PLC0415
    from sim.config import SimConfig  # noqa: PLC0415

    s = kit.settings(ParetoGrid, GRIDS, grid, overrides)
    console = Console()
    cfg = kit.eval_cfg(s.batch_size, s.eval_bits_per_snr)
    model_of = functools.cache(lambda bits, frac: _model(s, bits, frac))
    snr = list(cfg.eval_snr_db)
    i12 = snr.index(PARETO_SNR_DB)

    def point(bits: str, frac: float, cycles: int, key: str) -> Callable[[], dict]:
        def compute() -> dict:
            model = model_of(bits, frac)
            row = kit.measure(cfg, model, key)
            report = build_detector(
                model,
                out_dir / "builds" / key,
                f"fullycon_{key}",
                HwBuildConfig(target_cycles=cycles),
                SimConfig(n_vectors=s.vectors, seed=7),
                n_golden=min(512, s.vectors),
            )
            hw = hardware_row(report)
            return {
                "bits": bits,
                "prune_fraction": frac,
                "target_cycles": cycles,
                **row,
                **{k: hw[k] for k in hw if k not in ("variant",)},
                "ber_at_12db": row["ber"][i12],
            }

        return compute

    grid_axes = ("bits", "prune_fractions", "target_cycles")
    common = {k: v for k, v in asdict(s).items() if k not in grid_axes}
    points = []
    for bits in s.bits:
        for frac in s.prune_fractions:
            for cycles in s.target_cycles:
                key = f"{bits}_p{round(100 * frac)}_c{cycles}"
                settings = {
                    **common,
                    "bits": bits,
                    "prune_fraction": frac,
                    "target_cycles": cycles,
                    "snr_db": snr,
                }
                points.append((key, settings, point(bits, frac, cycles, key)))
    rows, computed = kit.run(NAME, out_dir, points, console)
    _pareto(rows)
    summary = {
        "experiment": NAME,
        "grid": grid,
        "settings": asdict(s),
        "snr_db": snr,
        "channel": "fixed Toeplitz-0.6 30x20 BPSK",
        "rows": rows,
        "computed": computed,
    }
    header = ["variant", "weights", "cycles/frame", "latency us", "LUT", "BRAM18", "DSP"]
    header += [f"BER {PARETO_SNR_DB:g} dB", "bit-exact", "Pareto"]
    table = [
        [
            r["key"],
            str(r["weights"]),
            str(r["cycles_per_frame"]),
            f"{r['latency_us']:.3f}",
            str(r["LUT"]),
            str(r["BRAM_18K"]),
            str(r["DSP"]),
            f"{r['ber_at_12db']:.2e}",
            f"{r['vectors_checked']} / yes" if r["bit_exact"] else "NO",
            "*" if r["pareto"] else "",
        ]
        for r in rows
    ]
    kit.print_table(console, f"{NAME} ({grid})", header, table)
    md = (
        f"# {NAME} ({grid} grid)\n\nQAT fine-tunes ({s.qat_steps} steps) of the shipped float "
        f"FullyCon with structured neuron pruning, each built to RTL and simulated "
        f"({s.vectors} vectors). BER on {rows[0]['bits_per_snr']} bits at {PARETO_SNR_DB:g} dB; "
        f"LUT/BRAM/DSP are FINN's estimates; * = on the Pareto front of (BER, latency, LUT).\n\n"
        + kit.md_table(header, table)
    )
    kit.write(out_dir, NAME, summary, md)
    _plot_pareto(rows, out_dir / f"{NAME}.png")
    return summary


def _plot_pareto(rows: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    sc = ax.scatter(
        [r["latency_us"] for r in rows],
        [max(r["ber_at_12db"], 1e-7) for r in rows],
        c=[r["LUT"] for r in rows],
        cmap="viridis",
        marker="o",
    )
    for r in rows:
        ax.annotate(r["key"] + (" *" if r["pareto"] else ""), (r["latency_us"], r["ber_at_12db"]))
    ax.set_yscale("log")
    ax.set_xlabel("latency (us, RTL simulation)")
    ax.set_ylabel(f"BER at {PARETO_SNR_DB:g} dB")
    fig.colorbar(sc, ax=ax, label="LUT (estimate)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
