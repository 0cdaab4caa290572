"""Per-layer figures a hardware engineer reads: the ``layers`` table, the folding verdict and
``accelerator.svg``, from a finished hw build directory (``hw_report.json`` and the last
intermediate model).

Contract: ``layer_report(hw_dir) -> {"layers": [...], "folding_target": {...},
"estimate_notes": [...]}`` and ``write_svg(report, path)``. Each row of ``layers`` is one FINN
node of the accelerator with the user's ONNX node names it implements (kept through the build by
:mod:`hw.names`), its folding (PE/SIMD), cycles per frame and FINN's resource estimate; FIFO rows
carry their depth.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.names import user_names

#: FINN's estimate for the RTL MVAU counts DSPs only: its LUT figure is 0, which understates the
#: LUT total (adder trees, control, the weight stream). Stated, not hidden.
MVAU_RTL_LUT_NOTE = (
    "FINN estimates MVAU_rtl LUTs as 0 (it models the DSP datapath only); the LUT totals "
    "understate the design: use `qphy synth --tool yosys` for synthesized counts"
)
FF_NOTE = "FINN gives no FF estimate; synthesized FF counts come from `qphy synth`"


def _attr(inst, name: str):
    try:
        return inst.get_nodeattr(name)
    except (AttributeError, KeyError, Exception):  # noqa: BLE001 - FINN raises plain Exception
        return None


def final_model(hw_dir: Path) -> ModelWrapper:
    """The last intermediate model of the build (the accelerator as exported)."""
    models = sorted((Path(hw_dir) / "intermediate").glob("*.onnx"))
    return ModelWrapper(str(models[-1]))


def layer_report(hw_dir: Path) -> dict:
    """The ``layers`` table, the folding target's verdict and the estimate notes."""
    hw_dir = Path(hw_dir)
    hw = json.loads((hw_dir / "hw_report.json").read_text())
    model = final_model(hw_dir)
    cycles = hw.get("cycles_per_layer", {})
    res = hw.get("estimated_resources_per_layer", {})
    fifo = hw.get("fifo_depths", {})
    rows = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        row = {
            "finn_node": node.name,
            "op_type": node.op_type,
            "user_nodes": user_names(node) or ["(accelerator input)"],
            "PE": _attr(inst, "PE"),
            "SIMD": _attr(inst, "SIMD"),
            "cycles": cycles.get(node.name),
            "estimated": {k: int(round(v)) for k, v in res.get(node.name, {}).items()},
        }
        if node.name in fifo:
            row["fifo_depth"] = fifo[node.name]
        if node.op_type == "MVAU_rtl":
            row["LUT_estimate_note"] = "not modelled by FINN (0)"
            row["MW"], row["MH"] = _attr(inst, "MW"), _attr(inst, "MH")
        rows.append(row)
    notes = [FF_NOTE]
    if any(r["op_type"] == "MVAU_rtl" for r in rows):
        notes.insert(0, MVAU_RTL_LUT_NOTE)
    return {
        "layers": rows,
        "folding_target": folding_verdict(hw, rows),
        "estimate_notes": notes,
    }


def folding_verdict(hw: dict, rows: list[dict]) -> dict:
    """Whether the cycles/frame target was met and, if not, which layer holds it back and why."""
    target = hw.get("folding_target_cycles")
    achieved = hw.get("analytic_cycles_per_frame")
    timed = [r for r in rows if r["cycles"]]
    slowest = max(timed, key=lambda r: r["cycles"]) if timed else None
    verdict = {"target_cycles": target, "achieved_cycles_per_frame": achieved}
    if target is None or achieved is None:
        return {**verdict, "met": None, "why": "no folding target recorded"}
    verdict["met"] = achieved <= target
    if slowest is not None:
        verdict["slowest_layer"] = {
            "finn_node": slowest["finn_node"],
            "user_nodes": slowest["user_nodes"],
            "cycles": slowest["cycles"],
        }
    if verdict["met"]:
        verdict["why"] = "every layer folds to at most the target"
    elif slowest is None:
        verdict["why"] = "no layer reports its cycles"
    elif slowest["op_type"].startswith("MVAU") and (slowest["PE"], slowest["SIMD"]) == (
        slowest.get("MH"),
        slowest.get("MW"),
    ):
        verdict["why"] = (
            f"{', '.join(slowest['user_nodes'])} ({slowest['finn_node']}) is fully parallel "
            f"(PE = MH = {slowest['PE']}, SIMD = MW = {slowest['SIMD']}) and still takes "
            f"{slowest['cycles']} cycles/frame: its input vectors per frame set the floor"
        )
    else:
        verdict["why"] = (
            f"{', '.join(slowest['user_nodes'])} ({slowest['finn_node']}, {slowest['op_type']}) "
            f"takes {slowest['cycles']} cycles/frame at PE={slowest['PE']}, "
            f"SIMD={slowest['SIMD']}: PE and SIMD must divide the layer's channel counts, and "
            "this is the fastest folding the layer type allows"
        )
    return verdict


def write_svg(report: dict, path: Path) -> None:
    """The accelerator as a row of boxes (one per FINN node, dataflow order) with the user's
    names, folding, cycles and estimated LUT/DSP/BRAM; the slowest layer is drawn in red."""
    rows = report["layers"]
    slow = (report.get("folding_target") or {}).get("slowest_layer", {}).get("finn_node")
    box_w, box_h, gap, pad = 170, 118, 26, 20
    width = pad * 2 + len(rows) * box_w + max(0, len(rows) - 1) * gap
    height = box_h + pad * 2 + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="monospace" font-size="11">',
        f'<text x="{pad}" y="{pad - 4}" font-size="12">accelerator dataflow (red: slowest '
        "layer; estimates are FINN's)</text>",
    ]
    for i, r in enumerate(rows):
        x = pad + i * (box_w + gap)
        y = pad + 10
        colour = "#f4cccc" if r["finn_node"] == slow else "#dde7f3"
        est = r["estimated"]
        lines = [
            ", ".join(r["user_nodes"])[:24],
            r["finn_node"][:24],
            f"PE {r['PE']} SIMD {r['SIMD']}" if r["PE"] is not None else "",
            f"{r['cycles']} cycles/frame" if r["cycles"] is not None else "",
            f"LUT {est.get('LUT', '?')} DSP {est.get('DSP', '?')}",
            f"BRAM18 {est.get('BRAM_18K', '?')}"
            + (f" depth {r['fifo_depth']}" if "fifo_depth" in r else ""),
        ]
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{colour}" '
            'stroke="#333"/>'
        )
        for k, text in enumerate(t for t in lines if t):
            weight = ' font-weight="bold"' if k == 0 else ""
            parts.append(f'<text x="{x + 8}" y="{y + 18 + 17 * k}"{weight}>{escape(text)}</text>')
        if i:
            ax = x - gap
            parts.append(
                f'<line x1="{ax}" y1="{y + box_h / 2}" x2="{x - 2}" y2="{y + box_h / 2}" '
                'stroke="#333" marker-end="url(#a)"/>'
            )
    parts.insert(
        1,
        '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>',
    )
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts) + "\n")
