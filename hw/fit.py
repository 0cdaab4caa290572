"""Does a build fit its FPGA part? FINN's estimate, or Yosys's synthesized counts when present.

Capacities come from the one device table (:mod:`hw.devices`). A part without a row gives
``fits: None`` with the reason, never a guess. Synthesized counts (``synth_report.json`` of
:mod:`bitstreams.yosys`) are preferred: they are what a netlist uses, FINN's estimate is a model
(its LUT figure for MVAU_rtl reads 0).
"""

from __future__ import annotations

from hw.devices import RESOURCES, capacity, utilisation

__all__ = ["RESOURCES", "estimated_fit", "fit", "part_capacity"]


def part_capacity(fpga_part: str) -> dict[str, int] | None:
    """The part's resources from the device table, or None when it has no row."""
    return capacity(fpga_part)


def fit(used: dict[str, float], fpga_part: str, basis: str = "estimate") -> dict:
    """``{"fits", "basis", "capacity", "utilisation", "over"}`` of ``used`` on ``fpga_part``:
    utilisation per resource ``used`` names (used / capacity), ``over`` the resources above
    100 %, ``fits`` False when any is. ``basis`` says whose counts these are (``estimate``:
    FINN's, ``yosys``: synthesized). ``fits`` is None (with ``reason``) for a part without a
    table row."""
    cap = capacity(fpga_part)
    if cap is None:
        return {"fits": None, "basis": basis, "reason": f"no resource table for {fpga_part}"}
    util = utilisation(used, cap)
    over = sorted(k for k, u in util.items() if u > 1.0)
    return {"fits": not over, "basis": basis, "capacity": cap, "utilisation": util, "over": over}


def estimated_fit(
    estimated: dict[str, int], fpga_part: str, synthesized: dict[str, int] | None = None
) -> dict:
    """The fit of a build: on the synthesized counts when given (``basis: yosys``), else on
    FINN's estimate (``basis: estimate``)."""
    if synthesized:
        return fit(synthesized, fpga_part, "yosys")
    return fit(estimated, fpga_part, "estimate")
