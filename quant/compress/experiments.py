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

The experiments themselves live in their own modules (:mod:`quant.compress.exp_pruning`,
:mod:`quant.compress.exp_quantization`, :mod:`quant.compress.exp_sharing`,
:mod:`quant.compress.exp_lowrank`, :mod:`quant.compress.exp_distill`), registered on import;
:func:`_load_builtin` imports them before the registry is read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from qphy.errors import ConfigError
from qphy.fsutil import atomic_write_json, atomic_write_text
from quant.compress.accounting import account
from quant.compress.passes import ber
from quant.compress.sweep import ray_cluster
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


def _load_builtin() -> None:
    import quant.compress.exp_csi  # noqa: F401, PLC0415 - registers csinetplus-pruning/-quantization
    import quant.compress.exp_distill  # noqa: F401, PLC0415 - registers fullycon-distillation
    import quant.compress.exp_lowrank  # noqa: F401, PLC0415 - registers fullycon-lowrank
    import quant.compress.exp_pareto  # noqa: F401, PLC0415 - registers pareto-detector
    import quant.compress.exp_pruning  # noqa: F401, PLC0415 - registers fullycon-pruning
    import quant.compress.exp_quantization  # noqa: F401, PLC0415 - registers fullycon-quantization
    import quant.compress.exp_sharing  # noqa: F401, PLC0415 - registers fullycon-sharing
    import quant.exp_green_detnet  # noqa: F401, PLC0415 - registers green-detnet


def experiment_names() -> list[str]:
    _load_builtin()
    return sorted(EXPERIMENTS)


def run_experiment(
    name: str,
    out_dir: Path,
    grid: str = "small",
    overrides: dict | None = None,
    ray_address: str | None = None,
) -> dict:
    """Run (or resume) experiment ``name`` on ``grid`` into ``out_dir``; returns its summary.

    Args:
        name: A registered experiment (see :func:`experiment_names`).
        out_dir: Results and the per-point cache.
        grid: ``small`` (CI-sized) or ``full``.
        overrides: Replace fields of the grid's settings (e.g. ``{"retrain_steps": 500}``).
        ray_address: Run the points as Ray tasks on this cluster (``auto``, ``ray://...``,
            ``local``); None runs them here (:mod:`quant.compress.sweep`).

    Raises:
        ConfigError: Unknown experiment, grid or override; no Ray cluster at the address.
    """
    _load_builtin()
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment '{name}'; known: {', '.join(experiment_names())}")
    if grid not in GRIDS:
        raise ConfigError(f"unknown grid '{grid}'; known: {', '.join(GRIDS)}")
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ray_cluster(ray_address):
        return EXPERIMENTS[name].run(out_dir, grid, dict(overrides or {}))


# ---- shared machinery ---------------------------------------------------------------------------


def _measure(cfg: QuantConfig, model: torch.nn.Module, name: str, **ber_kwargs) -> dict:
    """What every experiment row carries: the model's accounting and its BER per SNR (with its
    error counts, for the no-loss rule), on the experiments' shared vectors; ``mmse_ber`` too
    when ``with_mmse=True``."""
    res = ber(cfg, {name: model}, seed=BER_SEED, **ber_kwargs)
    row = {
        "account": account(model).to_json(),
        "ber": res["ber"][name],
        "errors": res["errors"][name],
        "bits_per_snr": res["bits_simulated_per_snr"],
    }
    if "mmse" in res["ber"]:
        row["mmse_ber"] = res["ber"]["mmse"]
    return row


def _settings(cls: type, grids: dict[str, Any], grid: str, overrides: dict) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
    base = grids[grid]
    checked = {}
    for key, value in overrides.items():
        default = getattr(base, key)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        ok = (
            isinstance(value, type(default))
            or (isinstance(default, float) and isinstance(value, int))
        ) and not (isinstance(value, bool) and not isinstance(default, bool))
        if not ok:
            raise ConfigError(
                f"setting {key}={value!r}: expected {type(default).__name__} like {default!r}"
            )
        checked[key] = float(value) if isinstance(default, float) else value
    return replace(base, **checked)


def _fullycon_setup(
    cls: type, grids: dict[str, Any], grid: str, overrides: dict
) -> tuple[Any, Console, QuantConfig, dict, Callable[[], torch.nn.Module]]:
    """What every FullyCon experiment starts from: its settings (grid + overrides), a console,
    the evaluation config, the settings every point shares (BER bits and SNRs) and a loader of
    the shipped float model (loaded once, on first use)."""
    s = _settings(cls, grids, grid, overrides)
    cfg = _eval_cfg(s.batch_size, s.eval_bits_per_snr)
    common = {"eval_bits_per_snr": s.eval_bits_per_snr, "snr_db": list(cfg.eval_snr_db)}
    return s, Console(), cfg, common, functools.cache(_shipped_float)


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
    # Run the importable module's main: the experiment modules register into its registry, not
    # into this __main__ copy.
    from quant.compress.experiments import main as _main  # noqa: PLC0415

    raise SystemExit(_main())
