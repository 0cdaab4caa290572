"""Compression experiments (Guo et al., "Compression and acceleration of neural networks for
communications"), re-run on qphy's FullyCon: a registry and :func:`run_experiment`.

Contract: ``run_experiment(name, out_dir, grid)`` runs a registered experiment on its ``small``
(CI, well under two minutes on 2 cores) or ``full`` (command line) grid and returns its summary
dict. Each grid point is cached as ``out_dir/points/<key>.json`` together with the settings that
produced it; a rerun with the same settings reuses it (no training, no BER), one with other
settings recomputes it. The summary is written as ``<name>.json``, a Markdown table
``<name>.md`` and a BER-vs-SNR plot ``<name>.png``. Every experiment starts from the SHIPPED
float checkpoint (``quant.pipeline.load_or_train(QuantConfig())``) and fine-tunes through the
one trainer with compression passes (callbacks); BER is measured on the fixed 30x20 BPSK
channel on the same seeded vectors for every point.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from qphy.errors import ConfigError
from qphy.fsutil import atomic_write_json, atomic_write_text
from qphy.variants import Bits
from quant.compress.accounting import FLOAT_BITS, account
from quant.compress.masks import MaskCallback, magnitude_masks, sparsity, zero_weights
from quant.compress.passes import ber, finetune, no_ber_loss
from quant.config import QuantConfig

log = logging.getLogger(__name__)

GRIDS = ("small", "full")
#: Seed of the fine-tuning data stream: the same for every grid point, so points differ only in
#: what is compressed.
FINETUNE_SEED = 1
#: Seed of the BER vectors (evaluate_ber's default: the same vectors as `qphy evaluate`).
BER_SEED = 1234


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: ``run(out_dir, grid, overrides) -> summary``."""

    name: str
    help: str
    run: Callable[[Path, str, dict], dict]


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, help: str) -> Callable:
    """Decorator registering ``fn(out_dir, grid, overrides) -> dict`` under ``name``."""

    def deco(fn: Callable[[Path, str, dict], dict]) -> Callable[[Path, str, dict], dict]:
        if name in EXPERIMENTS:
            raise ValueError(f"experiment '{name}' registered twice")
        EXPERIMENTS[name] = Experiment(name, help, fn)
        return fn

    return deco


def experiment_names() -> list[str]:
    return sorted(EXPERIMENTS)


def run_experiment(
    name: str, out_dir: Path, grid: str = "small", overrides: dict | None = None
) -> dict:
    """Run (or resume) experiment ``name`` on ``grid`` into ``out_dir``; returns its summary.

    Args:
        name: A registered experiment (see :func:`experiment_names`).
        out_dir: Results and the per-point cache.
        grid: ``small`` (CI-sized) or ``full``.
        overrides: Replace fields of the grid's settings (e.g. ``{"retrain_steps": 500}``).

    Raises:
        ConfigError: Unknown experiment, grid or override.
    """
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment '{name}'; known: {', '.join(experiment_names())}")
    if grid not in GRIDS:
        raise ConfigError(f"unknown grid '{grid}'; known: {', '.join(GRIDS)}")
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return EXPERIMENTS[name].run(out_dir, grid, dict(overrides or {}))


# ---- shared machinery ---------------------------------------------------------------------------


def _settings(cls: type, grids: dict[str, Any], grid: str, overrides: dict) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
    return replace(grids[grid], **overrides)


def _cached_point(
    out_dir: Path, key: str, settings: dict, compute: Callable[[], dict], console: Console
) -> tuple[dict, bool]:
    """The point's result from ``out_dir/points/<key>.json`` if its settings match, else
    ``compute()`` (then cached). Returns ``(result, computed)``."""
    path = out_dir / "points" / f"{key}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
        except json.JSONDecodeError:
            cached = None
        if isinstance(cached, dict) and cached.get("settings") == settings:
            console.print(f"  [dim]{key}: cached ({path.name})[/dim]")
            return cached["result"], False
        console.print(f"  [yellow]{key}: cached with other settings, recomputing[/yellow]")
    t0 = time.perf_counter()
    result = compute()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"key": key, "settings": settings, "result": result})
    return result, True


def _shipped_float() -> torch.nn.Module:
    """The shipped float FullyCon (fixed channel)."""
    from quant.pipeline import load_or_train  # noqa: PLC0415

    return load_or_train(QuantConfig())


def _eval_cfg(batch_size: int, bits_per_snr: int) -> QuantConfig:
    return QuantConfig(batch_size=batch_size, eval_bits_per_snr=bits_per_snr)


def _plot(rows: list[dict], snr_db: list[float], path: Path, title: str, label: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for row in rows:
        vals = np.where(np.asarray(row["ber"]) > 0, row["ber"], np.nan)
        ax.semilogy(snr_db, vals, marker="o", label=row[label])
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("BER")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ber_cells(row: dict) -> list[str]:
    return [f"{b:.2e}" for b in row["ber"]]


def _write(out_dir: Path, name: str, summary: dict, markdown: str) -> None:
    atomic_write_json(out_dir / f"{name}.json", summary)
    atomic_write_text(out_dir / f"{name}.md", markdown)


def _print_table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(*r)
    # Wide enough for the BER columns even when stdout is not a terminal (80 columns).
    console.print(table, width=max(console.width, 170))


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ---- fullycon-pruning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PruningGrid:
    """Settings of ``fullycon-pruning``.

    Attributes:
        thresholds: Magnitude thresholds t (|w| < t pruned, one global t); 0 is the control
            (fine-tuned like the others, nothing pruned).
        retrain_steps: Fine-tuning steps after pruning (masks held by MaskCallback).
        lr: Fine-tuning learning rate (1e-4, as in the paper).
        batch_size: Vectors per fine-tuning step.
        eval_bits_per_snr: Bits simulated per SNR point (8..13 dB).
    """

    thresholds: tuple[float, ...]
    retrain_steps: int
    lr: float = 1e-4
    batch_size: int = 1000
    eval_bits_per_snr: int = 1_000_000


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
    s = _settings(PruningGrid, PRUNING_GRIDS, grid, overrides)
    console = Console()
    cfg = _eval_cfg(s.batch_size, s.eval_bits_per_snr)
    common = {"eval_bits_per_snr": s.eval_bits_per_snr, "snr_db": list(cfg.eval_snr_db)}
    keys = ["shipped"] + [f"t{t:.3f}" for t in s.thresholds]
    shipped: torch.nn.Module | None = None
    rows: list[dict] = []
    computed: list[str] = []

    def load() -> torch.nn.Module:
        nonlocal shipped
        if shipped is None:
            shipped = _shipped_float()
        return shipped

    def shipped_point() -> dict:
        model = load()
        res = ber(cfg, {"float": model}, seed=BER_SEED, with_mmse=True)
        return {
            "threshold": None,
            "account": account(model).to_json(),
            "ber": res["ber"]["float"],
            "errors": res["errors"]["float"],
            "mmse_ber": res["ber"]["mmse"],
            "bits_per_snr": res["bits_simulated_per_snr"],
        }

    def pruned_point(t: float, key: str) -> Callable[[], dict]:
        def compute() -> dict:
            model = copy.deepcopy(load())
            masks = magnitude_masks(model, t)
            fitres = finetune(
                model,
                cfg,
                steps=s.retrain_steps,
                lr=s.lr,
                callbacks=[MaskCallback(masks)],
                seed=FINETUNE_SEED,
                description=f"retrain {key}",
            )
            zeros = dict(zero_weights(model))
            held = all(bool(zeros[n][~m].all()) for n, m in masks.items())
            res = ber(cfg, {key: model}, seed=BER_SEED)
            return {
                "threshold": t,
                "mask_pruned_fraction": sparsity(masks),
                "masks_held": held,
                "account": account(model).to_json(),
                "final_train_loss": fitres.mean_recent_loss,
                "ber": res["ber"][key],
                "errors": res["errors"][key],
                "bits_per_snr": res["bits_simulated_per_snr"],
            }

        return compute

    for i, key in enumerate(keys):
        console.rule(f"fullycon-pruning [{i + 1}/{len(keys)}] {key}")
        if key == "shipped":
            settings = {**common, "point": "shipped float, no fine-tuning"}
            result, did = _cached_point(out_dir, key, settings, shipped_point, console)
        else:
            t = s.thresholds[i - 1]
            settings = {
                **common,
                "threshold": t,
                "retrain_steps": s.retrain_steps,
                "lr": s.lr,
                "batch_size": s.batch_size,
                "finetune_seed": FINETUNE_SEED,
            }
            result, did = _cached_point(out_dir, key, settings, pruned_point(t, key), console)
        if did:
            computed.append(key)
        rows.append({"key": key, **result})

    ref = rows[0]
    for row in rows:
        row["no_ber_loss"] = no_ber_loss(row["errors"], ref["errors"], ref["bits_per_snr"])
        row["max_ber_ratio"] = max(
            (b / r if r > 0 else float("inf") if b > 0 else 1.0)
            for b, r in zip(row["ber"], ref["ber"], strict=True)
        )
    best = [r for r in rows[1:] if r["no_ber_loss"]]
    summary = {
        "experiment": "fullycon-pruning",
        "grid": grid,
        "settings": asdict(s),
        "snr_db": list(cfg.eval_snr_db),
        "channel": "fixed Toeplitz-0.6 30x20 BPSK",
        "start": "quant/checkpoints/fullycon_float_fixed.pt (shipped float)",
        "no_ber_loss_rule": "pruned BER - shipped BER <= 2 standard errors at every SNR",
        "rows": rows,
        "computed": computed,
        "max_pruned_without_ber_loss": max(
            (r["account"]["pruned_fraction"] for r in best), default=0.0
        ),
    }
    summary["target_met"] = summary["max_pruned_without_ber_loss"] >= 0.5
    header, table = _pruning_table(rows, summary["snr_db"])
    _print_table(console, f"fullycon-pruning ({grid})", header, table)
    md = (
        f"# fullycon-pruning ({grid} grid)\n\n"
        f"Shipped float FullyCon, fixed 30x20 BPSK channel; magnitude pruning |w| < t (global t, "
        f"weights only), then {s.retrain_steps} fine-tuning steps (Adam lr {s.lr:g}, batch "
        f"{s.batch_size}) with the masks re-applied after every step. BER on "
        f"{rows[0]['bits_per_snr']} bits per SNR (same vectors for every row). FLOPs per frame: "
        f"each add and multiply one FLOP, zeros skipped. Memory: per layer min(dense 32-bit, "
        f"CSR: 32-bit value + ceil(log2(fan_in))-bit column index per non-zero, "
        f"(rows+1) ceil(log2(nnz+1))-bit row pointers), plus 32-bit biases. 'no BER loss': "
        f"{summary['no_ber_loss_rule']}.\n\n"
        + _md_table(header, table)
        + f"\nMost weights pruned without BER loss: "
        f"{100 * summary['max_pruned_without_ber_loss']:.1f} % (target >= 50 %: "
        f"{'met' if summary['target_met'] else 'not met'}).\n"
    )
    _write(out_dir, "fullycon-pruning", summary, md)
    _plot(rows, summary["snr_db"], out_dir / "fullycon-pruning.png", "FullyCon pruning", "key")
    return summary


def _pruning_table(rows: list[dict], snr_db: list[float]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "pruned %", "non-zero", "FLOPs/frame", "memory kbit"]
    header += [f"BER {s:g} dB" for s in snr_db] + ["no BER loss"]
    table = []
    for r in rows:
        a = r["account"]
        table.append(
            [
                r["key"],
                f"{100 * a['pruned_fraction']:.1f}",
                f"{a['nonzero_weights']}",
                f"{a['flops_per_frame']}",
                f"{a['memory_bits'] / 1000:.1f}",
                *_ber_cells(r),
                "yes" if r["no_ber_loss"] else "no",
            ]
        )
    return header, table


# ---- fullycon-quantization ----------------------------------------------------------------------


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
    from quant.qat_fullycon import QuantFullyCon  # noqa: PLC0415
    from quant.recipes import Recipe  # noqa: PLC0415

    s = _settings(QuantizationGrid, QUANT_GRIDS, grid, overrides)
    console = Console()
    cfg = _eval_cfg(s.batch_size, s.eval_bits_per_snr)
    common = {"eval_bits_per_snr": s.eval_bits_per_snr, "snr_db": list(cfg.eval_snr_db)}
    shipped: torch.nn.Module | None = None
    rows: list[dict] = []
    computed: list[str] = []

    def load() -> torch.nn.Module:
        nonlocal shipped
        if shipped is None:
            shipped = _shipped_float()
        return shipped

    def float_point() -> dict:
        model = load()
        res = ber(cfg, {"float": model}, seed=BER_SEED)
        return {
            "weight_bits": FLOAT_BITS,
            "account": account(model).to_json(),
            "ber": res["ber"]["float"],
            "errors": res["errors"]["float"],
            "bits_per_snr": res["bits_simulated_per_snr"],
        }

    def qat_point(b: int, key: str) -> Callable[[], dict]:
        def compute() -> dict:
            torch.manual_seed(0)
            model = QuantFullyCon(Recipe(Bits(b, s.act_bits)), load().shape)
            model.load_float(load())
            fitres = finetune(
                model, cfg, steps=s.qat_steps, lr=s.lr, seed=FINETUNE_SEED, description=key
            )
            res = ber(cfg, {key: model}, seed=BER_SEED)
            return {
                "weight_bits": b,
                "account": account(model).to_json(),
                "final_train_loss": fitres.mean_recent_loss,
                "ber": res["ber"][key],
                "errors": res["errors"][key],
                "bits_per_snr": res["bits_simulated_per_snr"],
            }

        return compute

    keys = ["float"] + [f"w{b}a{s.act_bits}" for b in s.weight_bits]
    for i, key in enumerate(keys):
        console.rule(f"fullycon-quantization [{i + 1}/{len(keys)}] {key}")
        if key == "float":
            settings = {**common, "point": "shipped float, no fine-tuning"}
            result, did = _cached_point(out_dir, key, settings, float_point, console)
        else:
            b = s.weight_bits[i - 1]
            settings = {
                **common,
                "weight_bits": b,
                "act_bits": s.act_bits,
                "qat_steps": s.qat_steps,
                "lr": s.lr,
                "batch_size": s.batch_size,
                "finetune_seed": FINETUNE_SEED,
            }
            result, did = _cached_point(out_dir, key, settings, qat_point(b, key), console)
        if did:
            computed.append(key)
        rows.append({"key": key, **result})
    ref = rows[0]
    dense_float = ref["account"]["dense_memory_bits"]
    for row in rows:
        row["no_ber_loss"] = no_ber_loss(row["errors"], ref["errors"], ref["bits_per_snr"])
        row["memory_saved_vs_float32"] = 1.0 - row["account"]["dense_memory_bits"] / dense_float
    summary = {
        "experiment": "fullycon-quantization",
        "grid": grid,
        "settings": asdict(s),
        "snr_db": list(cfg.eval_snr_db),
        "channel": "fixed Toeplitz-0.6 30x20 BPSK",
        "start": "quant/checkpoints/fullycon_float_fixed.pt (shipped float)",
        "no_ber_loss_rule": "QAT BER - float BER <= 2 standard errors at every SNR",
        "rows": rows,
        "computed": computed,
    }
    header = ["variant", "weight bits", "memory kbit", "saved vs fp32 %"]
    header += [f"BER {x:g} dB" for x in summary["snr_db"]] + ["no BER loss"]
    table = [
        [
            r["key"],
            str(r["weight_bits"]),
            f"{r['account']['dense_memory_bits'] / 1000:.1f}",
            f"{100 * r['memory_saved_vs_float32']:.1f}",
            *_ber_cells(r),
            "yes" if r["no_ber_loss"] else "no",
        ]
        for r in rows
    ]
    _print_table(console, f"fullycon-quantization ({grid})", header, table)
    md = (
        f"# fullycon-quantization ({grid} grid)\n\n"
        f"QAT fine-tune of the shipped float FullyCon with B-bit per-channel power-of-two weights "
        f"and {s.act_bits}-bit activations (quant.recipes), {s.qat_steps} steps (Adam lr "
        f"{s.lr:g}, batch {s.batch_size}). Memory: dense weights x B bits + 32-bit biases, vs "
        f"all 32-bit. BER on {ref['bits_per_snr']} bits per SNR, fixed 30x20 BPSK channel.\n\n"
        + _md_table(header, table)
    )
    _write(out_dir, "fullycon-quantization", summary, md)
    _plot(rows, summary["snr_db"], out_dir / "fullycon-quantization.png", "FullyCon QAT", "key")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m quant.compress.experiments NAME --out DIR [--grid small|full]`` (until the
    ``qphy experiment`` subcommand exists)."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m quant.compress.experiments")
    parser.add_argument("name", choices=experiment_names())
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grid", choices=GRIDS, default="small")
    args = parser.parse_args(argv)
    try:
        run_experiment(args.name, args.out, args.grid)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
