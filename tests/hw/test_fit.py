"""Estimated resources against the part's capacity (FINN's device tables)."""

from __future__ import annotations

import pytest

from hw.fit import estimated_fit, part_capacity


def test_capacities_come_from_finn_tables():
    assert part_capacity("xczu3eg-sbva484-1-e") == {
        "LUT": 71000,
        "FF": 142000,
        "BRAM_18K": 412,
        "URAM": 0,
        "DSP": 360,
    }
    assert part_capacity("xczu7ev-ffvc1156-2-e")["LUT"] == 230000
    assert part_capacity("xczu48dr-ffvg1517-2-e")["DSP"] == 4272  # AMD DS891 (FINN has none)
    assert part_capacity("xcvu9p-flga2104-2-i") is None


def test_detnet_w4a8_estimate_does_not_fit_a_zu3eg():
    # The w4a8 DetNet build's estimate (README): LUT and BRAM beyond the ZU3EG.
    est = {"LUT": 276410, "BRAM_18K": 621, "URAM": 0, "DSP": 299}
    fit = estimated_fit(est, "xczu3eg-sbva484-1-e")
    assert fit["fits"] is False
    assert fit["over"] == ["BRAM_18K", "LUT"]
    assert fit["utilisation"]["LUT"] == pytest.approx(276410 / 71000, abs=1e-4)
    assert fit["utilisation"]["DSP"] == pytest.approx(299 / 360, abs=1e-4)


def test_fullycon_w4a4_estimate_fits_and_unknown_part_says_why():
    est = {"LUT": 8294, "BRAM_18K": 76, "URAM": 0, "DSP": 164}
    assert estimated_fit(est, "xczu3eg-sbva484-1-e")["fits"] is True
    # URAM on a part without URAM: 0 used fits, any used does not.
    assert estimated_fit({**est, "URAM": 2}, "xczu3eg-sbva484-1-e")["over"] == ["URAM"]
    unknown = estimated_fit(est, "xcvu9p-flga2104-2-i")
    assert unknown["fits"] is None and "no resource table" in unknown["reason"]


def test_cli_verdict_warns_when_the_estimate_does_not_fit(tmp_path, capsys):
    from qphy.cli import _print_verdict
    from qphy.contracts import Report

    est = {"LUT": 276410, "BRAM_18K": 621, "URAM": 0, "DSP": 299}
    rep = Report(
        variant="detnet_l10_w4a8_fixed",
        bit_exact=True,
        vectors_checked=2000,
        mismatches=0,
        latency_cycles=20635,
        cycles_per_frame=1000,
        clock_mhz=200.0,
        latency_us=103.175,
        throughput_vectors_per_s=2e5,
        budget_us=1000.0,
        within_budget=True,
        fpga_part="xczu3eg-sbva484-1-e",
        estimated_resources=est,
        fifo_depths={},
        tool_versions={},
        extras={"estimated_fit": estimated_fit(est, "xczu3eg-sbva484-1-e")},
    )
    _print_verdict(rep, tmp_path)
    err = capsys.readouterr().err
    assert "WARNING: FINN's estimate does not fit xczu3eg-sbva484-1-e" in err
    assert "BRAM_18K 621 > 412 (151 %), LUT 276,410 > 71,000 (389 %)" in err
    _print_verdict(
        Report(**{**rep.__dict__, "extras": {"estimated_fit": estimated_fit({}, rep.fpga_part)}}),
        tmp_path,
    )
    assert "WARNING" not in capsys.readouterr().err
