"""The one device table: capacity, family and DSP block of every FPGA part qphy names.

Used by the fit check (:mod:`hw.fit`), the analytic report (:mod:`hw.export`), the folding
search (:mod:`hw.optimize`), Yosys synthesis (:mod:`bitstreams.yosys`) and the board list
(:mod:`bitstreams.boards`). No finn import: bitstreams/ and the CLI read it without FINN.

Capacities are FINN's own per-device tables (``finn.util.platforms`` in finn-plus 1.6.1, the
numbers FINN's floorplanning uses: slightly below AMD's, e.g. 610 BRAM_18K for the ZU7EV's 624)
where FINN has one, else AMD's product tables (DS891 for Zynq UltraScale+ MPSoC/RFSoC, DS987
for Kria K26). ``tests/hw/test_devices.py`` checks every FINN-sourced row against FINN's table,
so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from qphy.errors import ConfigError

#: The resources a capacity names (FINN's order), BRAM in 18 Kb halves.
RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True)
class Device:
    """One FPGA device (the part's name up to the package, e.g. ``xczu7ev``).

    Attributes:
        name: Device name, lower case.
        family: Yosys ``synth_xilinx -family`` of the device (``xcup``: UltraScale+,
            ``xc7``: 7-series).
        dsp_block: The DSP slice FINN's MVAU_rtl maps to (DSP48E2 on UltraScale+).
        capacity: LUT, FF, BRAM_18K, URAM, DSP available to the design.
        source: Where the capacity comes from (``finn:<platform>`` or the AMD data sheet).
    """

    name: str
    family: str
    dsp_block: str
    capacity: dict[str, int]
    source: str


def _dev(name: str, family: str, cap: tuple[int, ...], source: str) -> Device:
    dsp = "DSP48E2" if family == "xcup" else "DSP48E1"
    return Device(name, family, dsp, dict(zip(RESOURCES, cap, strict=True)), source)


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        _dev("xc7z020", "xc7", (53200, 106400, 280, 0, 220), "finn:Pynq-Z1"),
        _dev("xczu3eg", "xcup", (71000, 142000, 412, 0, 360), "finn:Ultra96"),
        _dev("xczu7ev", "xcup", (230000, 460000, 610, 92, 1728), "finn:ZCU104"),
        _dev("xczu9eg", "xcup", (274000, 548000, 1824, 0, 2520), "finn:ZCU102"),
        _dev("xczu28dr", "xcup", (425000, 850000, 2160, 80, 4272), "finn:ZCU111"),
        _dev("xczu48dr", "xcup", (425280, 850560, 2160, 80, 4272), "AMD DS891"),
        _dev("xck26", "xcup", (117120, 234240, 288, 64, 1248), "AMD DS987"),
    )
}


def device_name(fpga_part: str) -> str:
    """``xczu7ev-ffvc1156-2-e`` -> ``xczu7ev``; ``xc7z020clg400-1`` -> ``xc7z020``."""
    part = fpga_part.lower()
    for name in sorted(DEVICES, key=len, reverse=True):
        if part.startswith(name):
            return name
    return part.split("-")[0]


def device(fpga_part: str) -> Device | None:
    """The device of a part, or None when the table has no row for it."""
    return DEVICES.get(device_name(fpga_part))


def require_device(fpga_part: str) -> Device:
    """The device of a part, or ConfigError naming the known devices."""
    dev = device(fpga_part)
    if dev is None:
        raise ConfigError(
            f"no device table row for {fpga_part}; known devices: {', '.join(sorted(DEVICES))}"
        )
    return dev


def capacity(fpga_part: str) -> dict[str, int] | None:
    """LUT/FF/BRAM_18K/URAM/DSP of the part, or None for a part without a row."""
    dev = device(fpga_part)
    return dict(dev.capacity) if dev else None


def utilisation(used: dict[str, float], cap: dict[str, int]) -> dict[str, float]:
    """used / capacity per resource both name (inf for any use of a resource the part lacks)."""
    return {
        k: round(v / cap[k], 4) if cap[k] else (0.0 if v == 0 else float("inf"))
        for k, v in used.items()
        if k in cap
    }
