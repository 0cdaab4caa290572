"""The studies' registry: one file per study in ``experiments/studies/``, found by scanning.

Contract: ``run_experiment(name, out_dir, grid)`` runs a registered study on its ``small`` (CI,
well under two minutes on 2 cores) or ``full`` (command line) grid and returns its summary
dict. Each grid point is cached as ``out_dir/points/<key>.json`` together with the settings that
produced it; a rerun with the same settings reuses it (no training, no BER), one with other
settings recomputes it. A study registers itself with :func:`experiment`; the registry imports
every module of :mod:`experiments.studies` (no list to edit), and an import error in one is
raised, naming the study, never skipped. Studies are written on :mod:`experiments.kit`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from experiments import studies
from experiments.sweep import ray_cluster
from qphy.errors import ConfigError

GRIDS = ("small", "full")


@dataclass(frozen=True)
class Experiment:
    """A registered study: ``run(out_dir, grid, overrides) -> summary``."""

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


def discover() -> list[str]:
    """Import every study module (each registers itself); returns the module names.

    Raises:
        ImportError: A study failed to import; the message names it and the cause.
    """
    names = sorted(m.name for m in pkgutil.iter_modules(studies.__path__) if not m.ispkg)
    for name in names:
        try:
            importlib.import_module(f"{studies.__name__}.{name}")
        except ImportError as exc:
            raise ImportError(f"study experiments.studies.{name} failed to import: {exc}") from exc
    return names


def experiment_names() -> list[str]:
    discover()
    return sorted(EXPERIMENTS)


def run_experiment(
    name: str,
    out_dir: Path,
    grid: str = "small",
    overrides: dict | None = None,
    ray_address: str | None = None,
) -> dict:
    """Run (or resume) study ``name`` on ``grid`` into ``out_dir``; returns its summary.

    Args:
        name: A registered study (see :func:`experiment_names`).
        out_dir: Results and the per-point cache.
        grid: ``small`` (CI-sized) or ``full``.
        overrides: Replace fields of the grid's settings (e.g. ``{"retrain_steps": 500}``).
        ray_address: Run the points as Ray tasks on this cluster (``auto``, ``ray://...``,
            ``local``); None runs them here (:mod:`experiments.sweep`).

    Raises:
        ConfigError: Unknown study, grid or override; no Ray cluster at the address.
    """
    discover()
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment '{name}'; known: {', '.join(experiment_names())}")
    if grid not in GRIDS:
        raise ConfigError(f"unknown grid '{grid}'; known: {', '.join(GRIDS)}")
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ray_cluster(ray_address):
        return EXPERIMENTS[name].run(out_dir, grid, dict(overrides or {}))
