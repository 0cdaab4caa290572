"""`qphy build detector --arch detnet`: the fixed-channel DetNet's MLP form to a bit-exact RTL
verdict through the same flow and report as FullyCon."""

from __future__ import annotations

import json
import math

import pytest

from qphy.cli import main
from qphy.contracts import REPORT_KEYS

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


@pytest.mark.rtl
@pytest.mark.slow
def test_detnet_builds_to_a_bit_exact_verdict(verilator, tmp_path, capsys):
    """``qphy build detector --arch detnet`` (the issue's interface, 2 layers, short training)
    writes the same report.json as the FullyCon build, bit-exact."""
    out = tmp_path / "detnet_l2"
    rc = main(
        [
            "build", "detector", "--arch", "detnet", "--layers", "2", "--bits", "w4a4",
            "--float-steps", "150", "--qat-steps", "60", "--checkpoint-dir", str(tmp_path / "ck"),
            "--vectors", "300", "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(report)
    assert report["variant"] == "detnet_l2_w4a4_fixed"
    assert report["bit_exact"] is True and report["mismatches"] == 0
    assert report["vectors_checked"] == 300
    assert report["within_budget"] is True
    assert report["estimated_fit"]["fits"] is True
    assert report["estimated_fit"]["capacity"]["LUT"] == 71000  # xczu3eg, FINN's table
    # 2L + 1 = 5 MVAUs in a chain: latency at least one frame per layer.
    assert report["latency_cycles"] >= 5 * report["cycles_per_frame"] * 0.5
    assert math.isclose(report["latency_us"], report["latency_cycles"] / report["clock_mhz"])
    assert (tmp_path / "ck" / "detnet_l2_float_fixed.pt").is_file()
    assert (tmp_path / "ck" / "detnet_l2_w4a4_fixed.pt").is_file()
