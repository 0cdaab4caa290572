"""bitstreams: report parsers, on hand-written samples in the layout Vivado 2024.x prints."""

from __future__ import annotations

import pytest

from bitstreams.reports import (
    ReportParseError,
    fmax_mhz,
    parse_power,
    parse_timing_summary,
    parse_utilization,
)
from tests.bitstreams.vivado_samples import POWER_SAMPLE, TIMING_SAMPLE, UTIL_SAMPLE


def test_parse_utilization():
    u = parse_utilization(UTIL_SAMPLE)
    assert u["LUT"] == {"used": 12345, "available": 230400}
    assert u["FF"]["used"] == 23456
    assert u["BRAM_tile"]["used"] == 76.5
    assert u["RAMB36"]["used"] == 70 and u["RAMB18"]["used"] == 13
    assert u["URAM"]["available"] == 96
    assert u["DSP"] == {"used": 164, "available": 1728}


def test_parse_utilization_refuses_a_report_without_luts():
    with pytest.raises(ReportParseError, match="LUT"):
        parse_utilization(UTIL_SAMPLE.split("3. BLOCKRAM")[1])


def test_parse_timing_and_fmax():
    t = parse_timing_summary(TIMING_SAMPLE)
    assert t["wns_ns"] == -0.25 and t["tns_failing_endpoints"] == 17
    assert t["whs_ns"] == 0.021 and t["met"] is False
    assert fmax_mhz(5.0, -0.25) == pytest.approx(1000 / 5.25)
    assert fmax_mhz(5.0, 1.0) == pytest.approx(250.0)


def test_parse_timing_unconstrained():
    with pytest.raises(ReportParseError, match="not a number"):
        parse_timing_summary(TIMING_SAMPLE.replace("-0.250", "inf"))
    with pytest.raises(ReportParseError, match="no Design Timing Summary"):
        parse_timing_summary("nothing here\n")


def test_parse_power():
    p = parse_power(POWER_SAMPLE)
    assert p["total_on_chip_w"] == 3.912 and p["dynamic_w"] == 3.231
    assert p["device_static_w"] == 0.681 and p["confidence_level"] == "Low"
    with pytest.raises(ReportParseError, match="Total On-Chip"):
        parse_power("| Dynamic (W) | 1.0 |\n")
