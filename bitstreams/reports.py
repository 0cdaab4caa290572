"""Parsers for the Vivado report files the flows write (plain text, as Vivado prints them).

* :func:`parse_utilization`: ``report_utilization`` tables -> LUT, FF, DSP, BRAM tiles,
  RAMB36/RAMB18, URAM (used and available).
* :func:`parse_timing_summary`: ``report_timing_summary`` "Design Timing Summary" -> WNS, TNS,
  WHS, failing endpoints; :func:`fmax_mhz` turns WNS at a clock period into Fmax.
* :func:`parse_power`: ``report_power`` summary -> total on-chip, dynamic and static power.

The parsers look rows up by their label, not by position, so the columns Vivado added over the
releases (``Prohibited`` since 2019) and the OOC asterisks (``CLB LUTs*``) do not matter.
A missing figure raises :class:`ReportParseError`: a silently absent number would read as zero.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from qphy.errors import PipelineError


class ReportParseError(PipelineError):
    """A Vivado report lacks a figure qphy needs (an unexpected format or a failed run)."""


#: report_utilization row label -> qphy key. UltraScale+ labels; "Slice LUTs"/"Slice Registers"
#: are the 7-series spellings of the same rows.
_UTIL_ROWS = {
    "CLB LUTs": "LUT",
    "Slice LUTs": "LUT",
    "CLB Registers": "FF",
    "Slice Registers": "FF",
    "DSPs": "DSP",
    "Block RAM Tile": "BRAM_tile",
    "RAMB36/FIFO": "RAMB36",
    "RAMB18": "RAMB18",
    "URAM": "URAM",
}


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every ``| a | b | ... |`` row in ``text``."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([c.strip() for c in line[1:-1].split("|")])
    return rows


def _number(cell: str) -> float:
    cell = cell.strip().rstrip("*").replace(",", "")
    return float(cell)


def parse_utilization(text: str) -> dict[str, dict[str, float]]:
    """``{key: {"used": n, "available": n}}`` for LUT, FF, DSP, BRAM_tile, RAMB36, RAMB18, URAM.

    Raises:
        ReportParseError: LUT, FF or DSP rows are missing.
    """
    result: dict[str, dict[str, float]] = {}
    header: list[str] | None = None
    for cells in _table_rows(text):
        if cells and cells[0] == "Site Type":
            header = cells
            continue
        if header is None or len(cells) != len(header):
            continue
        label = cells[0].rstrip("*").strip()
        key = _UTIL_ROWS.get(label)
        if key is None or key in result:
            continue
        try:
            used = _number(cells[header.index("Used")])
            avail = _number(cells[header.index("Available")])
        except (ValueError, IndexError):
            continue
        result[key] = {"used": used, "available": avail}
    missing = [k for k in ("LUT", "FF", "DSP") if k not in result]
    if missing:
        raise ReportParseError(f"utilization report lacks {missing}")
    return result


_TIMING_HEADER = re.compile(r"^\s*WNS\(ns\)\s+TNS\(ns\)")


def parse_timing_summary(text: str) -> dict[str, float | int | bool]:
    """WNS/TNS/WHS/THS (ns), failing endpoints and ``met`` from the Design Timing Summary.

    Raises:
        ReportParseError: no Design Timing Summary table, or WNS is not a number (no clock
            constraint: Vivado prints ``inf``).
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not _TIMING_HEADER.match(line):
            continue
        names = re.split(r"\s{2,}", line.strip())
        # the header, a row of dashes, then the values
        values = lines[i + 2].split() if i + 2 < len(lines) else []
        if len(values) != len(names):
            raise ReportParseError("timing summary: header and values do not line up")
        row = dict(zip(names, values, strict=True))
        try:
            wns = float(row["WNS(ns)"])
            whs = float(row["WHS(ns)"])
        except ValueError:
            wns = whs = math.inf
        if not (math.isfinite(wns) and math.isfinite(whs)):
            raise ReportParseError(
                f"timing summary: WNS {row['WNS(ns)']!r} is not a number (unconstrained clock?)"
            )
        return {
            "wns_ns": wns,
            "tns_ns": float(row["TNS(ns)"]),
            "tns_failing_endpoints": int(row["TNS Failing Endpoints"]),
            "whs_ns": whs,
            "ths_ns": float(row["THS(ns)"]),
            "ths_failing_endpoints": int(row["THS Failing Endpoints"]),
            "met": wns >= 0.0 and whs >= 0.0,
        }
    raise ReportParseError("no Design Timing Summary in the timing report")


def fmax_mhz(clock_period_ns: float, wns_ns: float) -> float:
    """Estimated Fmax of the critical path: 1 / (period - WNS)."""
    return 1000.0 / (clock_period_ns - wns_ns)


_POWER_ROWS = {
    "Total On-Chip Power (W)": "total_on_chip_w",
    "Dynamic (W)": "dynamic_w",
    "Device Static (W)": "device_static_w",
    "Junction Temperature (C)": "junction_temperature_c",
    "Confidence Level": "confidence_level",
}


def parse_power(text: str) -> dict[str, float | str]:
    """Total on-chip, dynamic and static power (W), junction temperature, confidence level.

    Raises:
        ReportParseError: no "Total On-Chip Power" row.
    """
    result: dict[str, float | str] = {}
    for cells in _table_rows(text):
        if len(cells) < 2:
            continue
        key = _POWER_ROWS.get(cells[0])
        if key is None or key in result:
            continue
        value = cells[1].split()[0] if cells[1] else ""
        if key == "confidence_level":
            result[key] = value
            continue
        try:
            result[key] = _number(value)
        except ValueError:
            continue
    if "total_on_chip_w" not in result:
        raise ReportParseError("power report lacks 'Total On-Chip Power (W)'")
    return result


def parse_clock(text: str) -> dict[str, float]:
    """``reports/clock.txt`` (written by bitstream.tcl): requested and actual PL clock, MHz."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return out


def parse_reports(reports_dir: Path, prefix: str, clock_period_ns: float) -> dict:
    """Every report of one flow (``prefix`` "ooc_" or "") in ``reports_dir``, parsed.

    Raises:
        ReportParseError: a report is missing or lacks a figure.
    """
    reports_dir = Path(reports_dir)

    def read(name: str) -> str:
        path = reports_dir / f"{prefix}{name}.rpt"
        if not path.is_file():
            raise ReportParseError(f"Vivado wrote no {path.name} (see the Vivado log)")
        return path.read_text(errors="replace")

    parsed: dict = {}
    clock = reports_dir / "clock.txt"
    if not prefix and clock.is_file():
        parsed["clock"] = parse_clock(clock.read_text())
        # Fmax against the clock the PS actually makes, not the one requested
        actual = parsed["clock"].get("pl_clk0_mhz")
        if actual:
            clock_period_ns = 1000.0 / actual
    timing = parse_timing_summary(read("timing_summary"))
    timing["fmax_mhz"] = round(fmax_mhz(clock_period_ns, float(timing["wns_ns"])), 2)
    parsed["utilization"] = parse_utilization(read("utilization"))
    parsed["timing"] = timing
    parsed["power"] = parse_power(read("power"))
    return parsed
