"""A toy study, as a user would drop it into ``experiments/studies/``: this one file.

It uses only the public kit (settings, points, run, reference row, tables, plots, write) and
registers itself; tests/experiments/test_toy_study.py puts this folder on the studies' path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from experiments import kit
from experiments.registry import experiment


@dataclass(frozen=True)
class ToyGrid:
    """Settings of ``toy-sweep``: a geometric BER curve per noise factor."""

    factors: tuple[float, ...]
    snr_db: tuple[float, ...] = (8.0, 10.0, 12.0)


GRIDS = {"small": ToyGrid(factors=(1.0, 2.0)), "full": ToyGrid(factors=(1.0, 2.0, 4.0))}


@experiment("toy-sweep", "a toy study on the public kit (tests only)")
def toy_sweep(out_dir: Path, grid: str, overrides: dict) -> dict:
    s = kit.settings(ToyGrid, GRIDS, grid, overrides)
    console = Console()

    def point(f: float):
        return lambda: {"factor": f, "ber": [f * 10.0 ** (-snr / 4) for snr in s.snr_db]}

    points = [(f"f{f:g}", {"factor": f, "snr_db": list(s.snr_db)}, point(f)) for f in s.factors]
    rows, computed = kit.run("toy-sweep", out_dir, points, console)
    ref = rows[0]
    for row in rows:
        row["ber_ratio"] = row["ber"][0] / ref["ber"][0]
    summary = kit.summary("toy-sweep", grid, s, s.snr_db, rows, computed, start=None)
    table = kit.ber_table(
        rows,
        s.snr_db,
        [("variant", lambda r: r["key"]), ("ratio", lambda r: f"{r['ber_ratio']:.1f}")],
    )
    return kit.publish(out_dir, summary, table, console, "A toy.", plot_title="toy")
