"""Does FINN's resource estimate of a build fit its FPGA part? (An estimate: Vivado decides.)

The capacities are FINN's own per-device tables (``finn.util.platforms``: LUT, FF, BRAM_18K,
URAM, DSP, as FINN's floorplanning uses them), keyed here by the part's device family. A part
FINN has no table for gives ``fits: None`` with the reason, never a guess.
"""

from __future__ import annotations

#: Device family (the part's prefix) -> the FINN platform holding that device's resources.
FINN_PLATFORM_OF_FAMILY = {
    "xc7z020": "Pynq-Z1",
    "xczu3eg": "Ultra96",
    "xczu7ev": "ZCU104",
    "xczu9eg": "ZCU102",
    "xczu28dr": "ZCU111",
}
RESOURCES = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


def part_capacity(fpga_part: str) -> dict[str, int] | None:
    """The part's resources from FINN's table, or None when FINN has none for its family."""
    part = fpga_part.lower()
    for family, platform in FINN_PLATFORM_OF_FAMILY.items():
        if part.startswith(family):
            from finn.util.platforms import platforms  # noqa: PLC0415

            return dict(zip(RESOURCES, platforms[platform]().compute_resources[0], strict=True))
    return None


def estimated_fit(estimated: dict[str, int], fpga_part: str) -> dict:
    """``{"fits", "capacity", "utilisation", "over"}`` of an estimate on ``fpga_part``:
    utilisation per resource the estimate names (estimate / capacity), ``over`` the resources
    above 100 %, ``fits`` False when any is. ``fits`` is None (with ``reason``) for a part
    without a table."""
    cap = part_capacity(fpga_part)
    if cap is None:
        return {"fits": None, "reason": f"no resource table for {fpga_part} in FINN"}
    util = {
        k: round(v / cap[k], 4) if cap.get(k) else (0.0 if v == 0 else float("inf"))
        for k, v in estimated.items()
        if k in cap
    }
    over = sorted(k for k, u in util.items() if u > 1.0)
    return {"fits": not over, "capacity": cap, "utilisation": util, "over": over}
