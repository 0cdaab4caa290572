"""The ``csinetplus-pruning`` and ``csinetplus-quantization`` experiments (Guo et al.'s CsiNet+
studies) on qphy's generated indoor/outdoor CSI, CR 4/8/16/32.

* pruning: magnitude pruning ``|w| < t`` of every weight of the float CsiNet+ (encoder and
  decoder, biases kept), fine-tuned with the masks held (:class:`MaskCallback`) through the CSI
  trainer (:func:`models.csi.jobs.fit_autoencoder`, i.e. :func:`quant.trainer.fit`); test-set
  NMSE and the remaining weights, encoder (the UE side, on the FPGA) and whole.
* quantization: QAT of the encoder at ``w<B>a8`` (codeword 8 bit; the decoder stays float, as in
  the shipped variants) fine-tuned from the float model; test NMSE and the encoder's weight
  memory against 32 bit.

Each point starts from the float checkpoint of its (CR, scenario) -- the shipped one where it
exists, else trained first by ``models.csi.jobs.load_or_train`` (about 15 min for CsiNet+ on this
machine) -- and is cached in ``out_dir/points``. The paper's thresholds refer to its own weight
scale; the ``t`` grid here spans the same pruned fractions on these models (20..90 %).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from rich.console import Console

from experiments import kit
from experiments.registry import experiment
from quant.compress.accounting import account
from quant.compress.masks import MaskCallback, magnitude_masks, sparsity


@dataclass(frozen=True)
class CsiGrid:
    """Settings of both CSI experiments.

    Attributes:
        crs: Compression ratios.
        scenarios: ``indoor`` and/or ``outdoor``.
        thresholds: Pruning thresholds t (pruning experiment).
        weight_bits: Encoder weight widths B (quantization experiment).
        steps: Fine-tuning steps per point (Adam, ``lr``).
        lr: Fine-tuning learning rate.
        batch_size: Samples per step.
        train_samples: Generated training drops (85 % train, 15 % validation).
        test_samples: Generated test drops (NMSE).
    """

    crs: tuple[int, ...]
    scenarios: tuple[str, ...]
    thresholds: tuple[float, ...]
    weight_bits: tuple[int, ...]
    steps: int
    lr: float = 1e-4
    batch_size: int = 200
    train_samples: int = 20000
    test_samples: int = 2000


GRIDS = {
    "small": CsiGrid(
        crs=(32,),
        scenarios=("indoor",),
        thresholds=(0.02,),
        weight_bits=(4,),
        steps=5,
        batch_size=32,
        train_samples=400,
        test_samples=200,
    ),
    "full": CsiGrid(
        crs=(4, 8, 16, 32),
        scenarios=("indoor", "outdoor"),
        thresholds=(0.005, 0.01, 0.02, 0.03, 0.05),
        weight_bits=(3, 4, 5, 6, 7, 8),
        steps=300,
    ),
}


def _cfg(s: CsiGrid, cr: int, scenario: str, bits=None):
    from models.csi.jobs import CsiConfig  # noqa: PLC0415

    return CsiConfig(
        arch="csinetplus",
        cr=cr,
        scenario=scenario,
        bits=bits,
        batch_size=s.batch_size,
        train_samples=s.train_samples,
        test_samples=s.test_samples,
    )


@functools.cache
def _float(s: CsiGrid, cr: int, scenario: str) -> tuple[dict, float]:
    """The float model's state and test NMSE (loaded once per process)."""
    from models.csi.jobs import datasets, load_or_train, nmse  # noqa: PLC0415

    cfg = _cfg(s, cr, scenario)
    model, _ = load_or_train(cfg)
    *_, test = datasets(cfg)
    return {k: v.clone() for k, v in model.state_dict().items()}, nmse(model, test)


def _float_model(s: CsiGrid, cr: int, scenario: str) -> torch.nn.Module:
    from models.csi.jobs import build  # noqa: PLC0415

    state, _ = _float(s, cr, scenario)
    return build(_cfg(s, cr, scenario), state)


def _weights(model: torch.nn.Module) -> dict:
    """Weights and non-zero weights of the prunable layers, encoder and whole model."""
    return {
        part: {"weights": acc.weights, "nonzero": acc.nonzero}
        for part, acc in (("encoder", account(model.encoder)), ("total", account(model)))
    }


def _pruning_point(s: CsiGrid, cr: int, scenario: str, t: float) -> Callable[[], dict]:
    def compute() -> dict:
        from models.csi.jobs import datasets, fit_autoencoder, nmse  # noqa: PLC0415

        cfg = _cfg(s, cr, scenario)
        train_x, val_x, test_x = datasets(cfg)
        model = _float_model(s, cr, scenario)
        masks = magnitude_masks(model, t)
        cb = MaskCallback(masks)
        cb.on_train_begin(model)
        before = nmse(model, test_x)
        stats = fit_autoencoder(
            model, train_x, val_x, s.steps, s.lr, cfg, f"prune t={t:g}", callbacks=[cb]
        )
        return {
            "cr": cr,
            "scenario": scenario,
            "t": t,
            "pruned_fraction": sparsity(masks),
            "weights": _weights(model),
            "nmse_db_before_finetune": before,
            "nmse_db": nmse(model, test_x),
            "float_nmse_db": _float(s, cr, scenario)[1],
            "train_s": stats["train_s"],
        }

    return compute


def _quant_point(s: CsiGrid, cr: int, scenario: str, b: int) -> Callable[[], dict]:
    def compute() -> dict:
        from models.csi.jobs import datasets, fit_autoencoder, nmse  # noqa: PLC0415
        from models.csi.qat import QuantAutoencoder  # noqa: PLC0415
        from qphy.variants import Bits  # noqa: PLC0415

        bits = Bits(b, 8)
        cfg = _cfg(s, cr, scenario, bits)
        train_x, val_x, test_x = datasets(cfg)
        model = QuantAutoencoder(_float_model(s, cr, scenario), bits, cfg.codeword_bits)
        stats = fit_autoencoder(
            model,
            train_x,
            val_x,
            s.steps,
            s.lr,
            cfg,
            f"QAT {bits.tag}",
            after_step=model.encoder.apply_masks,
        )
        enc = _weights(model)["encoder"]["weights"]
        return {
            "cr": cr,
            "scenario": scenario,
            "weight_bits": b,
            "encoder_weights": enc,
            "encoder_memory_saved_vs_float32": 1.0 - b / 32.0,
            "nmse_db": nmse(model, test_x),
            "float_nmse_db": _float(s, cr, scenario)[1],
            "train_s": stats["train_s"],
        }

    return compute


def _grid_points(s: CsiGrid, values, kind: str, make) -> list:
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()}
    settings.pop("thresholds")
    settings.pop("weight_bits")
    points = []
    for scenario in s.scenarios:
        for cr in s.crs:
            for v in values:
                key = f"{scenario}_cr{cr}_{kind}{v:g}"
                point_settings = {**settings, "crs": [cr], "scenarios": [scenario], kind: v}
                points.append((key, point_settings, make(s, cr, scenario, v)))
    return points


#: The last two columns of both CSI tables.
_NMSE_COLUMNS: list[kit.Column] = [
    ("NMSE dB", lambda r: f"{r['nmse_db']:.2f}"),
    ("float dB", lambda r: f"{r['float_nmse_db']:.2f}"),
]


@experiment("csinetplus-pruning", "CsiNet+ magnitude pruning: NMSE and remaining weights")
def csinetplus_pruning(out_dir: Path, grid: str, overrides: dict) -> dict:
    s = kit.settings(CsiGrid, GRIDS, grid, overrides)
    console = Console()
    points = _grid_points(s, s.thresholds, "t", _pruning_point)
    rows, computed = kit.run("csinetplus-pruning", out_dir, points, console)
    header, table = kit.table(
        rows,
        [
            ("scenario", lambda r: r["scenario"]),
            ("CR", lambda r: str(r["cr"])),
            ("t", lambda r: f"{r['t']:g}"),
            ("pruned %", lambda r: f"{100 * r['pruned_fraction']:.1f}"),
            (
                "enc. weights left",
                lambda r: (
                    f"{r['weights']['encoder']['nonzero']:,} / "
                    f"{r['weights']['encoder']['weights']:,}"
                ),
            ),
            *_NMSE_COLUMNS,
        ],
    )
    return _finish(out_dir, "csinetplus-pruning", grid, s, rows, computed, header, table, console)


@experiment("csinetplus-quantization", "CsiNet+ encoder QAT at B bits: NMSE, memory vs 32-bit")
def csinetplus_quantization(out_dir: Path, grid: str, overrides: dict) -> dict:
    s = kit.settings(CsiGrid, GRIDS, grid, overrides)
    console = Console()
    points = _grid_points(s, s.weight_bits, "b", _quant_point)
    rows, computed = kit.run("csinetplus-quantization", out_dir, points, console)
    header, table = kit.table(
        rows,
        [
            ("scenario", lambda r: r["scenario"]),
            ("CR", lambda r: str(r["cr"])),
            ("B", lambda r: str(r["weight_bits"])),
            ("enc. memory saved", lambda r: f"{100 * r['encoder_memory_saved_vs_float32']:.1f} %"),
            *_NMSE_COLUMNS,
        ],
    )
    return _finish(
        out_dir, "csinetplus-quantization", grid, s, rows, computed, header, table, console
    )


def _finish(out_dir, name, grid, s, rows, computed, header, table, console) -> dict:
    summary = {
        "experiment": name,
        "grid": grid,
        "settings": asdict(replace(s)),
        "rows": rows,
        "computed": computed,
    }
    kit.print_table(console, f"{name} ({grid})", header, table)
    md = (
        f"# {name} ({grid} grid)\n\nCsiNet+ on qphy's generated CSI ({s.test_samples} test "
        f"drops), {s.steps} fine-tuning steps (Adam lr {s.lr:g}, batch {s.batch_size}) from "
        f"the float model of each (CR, scenario).\n\n" + kit.md_table(header, table)
    )
    kit.write(out_dir, name, summary, md)
    _plot_nmse(rows, out_dir / f"{name}.png", name)
    return summary


def _plot_nmse(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    x_key = "pruned_fraction" if "pruned_fraction" in rows[0] else "weight_bits"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for scenario in sorted({r["scenario"] for r in rows}):
        for cr in sorted({r["cr"] for r in rows}):
            sel = [r for r in rows if r["scenario"] == scenario and r["cr"] == cr]
            ax.plot(
                [r[x_key] for r in sel],
                [r["nmse_db"] for r in sel],
                marker="o",
                label=f"{scenario} CR {cr}",
            )
    ax.set_xlabel("pruned fraction" if x_key == "pruned_fraction" else "encoder weight bits")
    ax.set_ylabel("NMSE (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
