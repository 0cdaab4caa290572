"""RTL verdict on the stitched small FullyCon: bit-exact, latency, faults caught."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from qphy.contracts import REPORT_KEYS
from qphy.errors import BitMismatchError, LatencyBudgetError
from qphy.flow import FLOW_EXTRAS
from sim.config import Bench, SimConfig
from sim.verdict import verify_built

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def test_bit_exact_under_backpressure(small_rtl):
    out, report = small_rtl
    on_disk = json.loads((out / "report.json").read_text())
    assert set(on_disk) == {*REPORT_KEYS, *FLOW_EXTRAS}  # + FINN estimate vs the part
    assert on_disk["bit_exact"] is True
    assert on_disk["vectors_checked"] >= 1000
    assert on_disk["mismatches"] == 0
    assert on_disk["variant"] == "fullycon_w4a4"
    assert on_disk["budget_us"] == 1000.0 and on_disk["within_budget"] is True


def test_latency_and_throughput_match_analysis(small_rtl):
    out, report = small_rtl
    details = json.loads((out / "sim" / "run" / "details.json").read_text())
    # Steady state is set by the slowest layer: FINN's estimate, within 10 %.
    assert report["cycles_per_frame"] == pytest.approx(
        details["analytic_cycles_per_frame"], rel=0.10
    )
    # Latency: at least one frame time, at most the sum of the layers plus pipeline overhead.
    assert report["cycles_per_frame"] <= report["latency_cycles"]
    assert report["latency_cycles"] <= 1.5 * details["analytic_latency_cycles"] + 100
    assert report["latency_us"] == pytest.approx(report["latency_cycles"] / report["clock_mhz"])
    assert report["throughput_vectors_per_s"] == pytest.approx(
        report["clock_mhz"] * 1e6 / report["cycles_per_frame"], rel=1e-3
    )
    assert not details["deadlock"] and details["extra_beats"] == 0


def _flip_one_weight(mem_dir):
    """Flip the top bit of the first weight word of the last MVAU (feeds the output)."""
    last = sorted(mem_dir.glob("MVAU_rtl_*_memblock.dat"))[-1]
    lines = last.read_text().splitlines()
    word = int(lines[0], 16)
    width = len(lines[0]) * 4
    lines[0] = format(word ^ (1 << (width - 1)), f"0{len(lines[0])}x")
    last.write_text("\n".join(lines) + "\n")
    return last.name


def test_flipped_weight_is_caught(small_rtl, tmp_path):
    out, _ = small_rtl
    mem = tmp_path / "mem"
    shutil.copytree(out / "hw" / "rtl" / "mem", mem)
    _flip_one_weight(mem)
    with pytest.raises(BitMismatchError, match=r"first at vector \d+, index \d+: expected -?\d+"):
        verify_built(
            out,
            SimConfig(n_vectors=200, seed=3),
            run_dir=tmp_path / "run",
            mem_dir=mem,
            n_vectors=200,
        )
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["bit_exact"] is False and report["mismatches"] > 0


def test_impossible_budget_raises(small_rtl, tmp_path):
    out, _ = small_rtl
    with pytest.raises(LatencyBudgetError, match=r"exceeds the budget of 0.01 us"):
        verify_built(
            out, SimConfig(n_vectors=50, budget_us=0.01), run_dir=tmp_path / "run", n_vectors=50
        )
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["bit_exact"] is True and report["within_budget"] is False


def test_cocotb_bench_agrees_with_the_harness(small_rtl, tmp_path):
    """The build is judged by the compiled harness; cocotb (the protocol-level bench) re-runs
    the same vectors under its own backpressure and must give the same integers and figures."""
    out, report = small_rtl
    details = json.loads((out / "sim" / "run" / "details.json").read_text())
    assert details["bench"] == "harness"
    cocotb = verify_built(
        out,
        SimConfig(n_vectors=300, seed=9, bench=Bench.COCOTB),
        run_dir=tmp_path / "cocotb",
        n_vectors=300,
    )
    assert cocotb.bit_exact and cocotb.vectors_checked == 300
    assert cocotb.latency_cycles == report.latency_cycles
    assert cocotb.cycles_per_frame == report.cycles_per_frame
    got = np.load(tmp_path / "cocotb" / "actual.npy")
    assert np.array_equal(got, np.load(out / "sim" / "run" / "actual.npy")[:300])
