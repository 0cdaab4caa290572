"""`qphy experiment pareto-detector`: real builds per grid point, the Pareto marking."""

from __future__ import annotations

import json

import pytest

from experiments.registry import run_experiment
from experiments.studies.pareto_detector import _pareto
from tests.sim.conftest import verilator  # noqa: F401 - the shared skip-or-fail fixture
from tests.tools import run_small_grid


def test_pareto_front_marks_the_undominated_rows():
    rows = [
        {"ber_at_12db": 1e-3, "latency_us": 2.0, "LUT": 5000},  # front: best BER
        {"ber_at_12db": 2e-3, "latency_us": 1.0, "LUT": 5000},  # front: fastest
        {"ber_at_12db": 2e-3, "latency_us": 2.0, "LUT": 6000},  # dominated by both
        {"ber_at_12db": 3e-3, "latency_us": 3.0, "LUT": 1000},  # front: smallest
    ]
    _pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, True]


@pytest.mark.rtl
@pytest.mark.slow
def test_small_grid_builds_a_bit_exact_point_and_resumes(verilator, tmp_path):  # noqa: F811
    out = tmp_path / "pareto"
    summary = run_small_grid("pareto-detector", out)
    (row,) = summary["rows"]
    assert row["key"] == "w4a4_p75_c64"
    assert row["bit_exact"] is True and row["vectors_checked"] == 200
    # 75 % of 200 neurons removed, rounded up to a multiple of 8: 56 per hidden layer.
    assert row["layer_sizes"] == [[30, 56], [56, 56], [56, 56], [56, 56], [56, 20]]
    assert row["weights"] == 30 * 56 + 3 * 56 * 56 + 56 * 20
    assert row["cycles_per_frame"] <= 64 and row["LUT"] > 0
    assert row["ber_at_12db"] == row["ber"][summary["snr_db"].index(12.0)]
    report = json.loads((out / "builds" / "w4a4_p75_c64" / "report.json").read_text())
    assert report["latency_cycles"] == row["latency_cycles"]
    assert "| w4a4_p75_c64 |" in (out / "pareto-detector.md").read_text()
    assert (out / "pareto-detector.png").stat().st_size > 1000
    assert run_experiment("pareto-detector", out, "small")["computed"] == []
