"""A calibrated model of Yosys's resource counts per FINN unit, for budgeting a folding.

FINN's own estimates are far from what a netlist uses (they read 0 LUTs for the RTL MVU and
have no flip-flop figure at all): the ``--optimize latency`` points chosen on them did not fit
their parts by synthesized count (docs/synthesis.md). This model predicts what ``qphy synth
--tool yosys --per-layer`` counts (LUT_total = logic + LUT-RAM sites + SRL, FF, DSP, BRAM_18K,
URAM) for each unit of a build from the unit's parameters:

* ``mvau_core``: an MVAU_rtl's compute module (PE, SIMD, input / weight / accumulator bits);
* ``mvau_weights``: its weight streamer (memstream: width PE*SIMD*weight bits, depth
  MW*MH/(PE*SIMD), LUT-RAM or block RAM);
* ``thresholding``: a Thresholding_rtl (PE, channels, thresholds, bit widths);
* ``fifo``: a StreamingFIFO_rtl (width, depth);
* ``dwc``: a StreamingDataWidthConverter_rtl (input and output widths).

Each resource of each kind is a linear function of a few features of those parameters
(:func:`features`), its coefficients fitted by non-negative least squares (scipy's ``nnls``)
on the per-layer Yosys counts of the calibration builds (``hw/synth_calibration.json``, one
row per synthesized unit; ``benchmarks/synth_calibration.py`` makes and collects them). The
fitted coefficients ship in ``hw/synth_model_coeffs.json``; ``python -m hw.synth_model fit``
refits them from the data (a test checks that the refit reproduces the shipped file), and
``python -m hw.synth_model check BUILD`` compares a synthesized build with the model.

What it is: an interpolation of Yosys's counts over the foldings calibrated (PE 1-200, SIMD
1-200, 4-bit weights, the detector's widths); the error on a held-out design is in
docs/synthesis.md. What it is not: Vivado's counts, or a model of units it has no kind for
(:func:`predict_node` raises ``ConfigError`` for them; the folding search then falls back to
FINN's estimate for those nodes).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from qphy.errors import ConfigError

HERE = Path(__file__).resolve().parent
DATA_FILE = HERE / "synth_calibration.json"
COEFF_FILE = HERE / "synth_model_coeffs.json"

#: What the model predicts, in the device table's names (LUT is Yosys's LUT_total).
RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")
#: synth_report.json's category for each.
REPORT_KEY = {"LUT": "LUT_total", "FF": "FF", "DSP": "DSP", "BRAM_18K": "BRAM_18K", "URAM": "URAM"}
KINDS = ("mvau_core", "mvau_weights", "thresholding", "fifo", "dwc")
#: A weight memory at most this deep is LUT-RAM (as hw/optimize.py sets it; Yosys chose
#: LUT-RAM for every such memory calibrated).
DISTRIBUTED_MAX_DEPTH = 64


def clog2(n: int) -> int:
    """Bits to index ``n`` items (0 for n <= 1)."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def _is_distributed(p: dict) -> bool:
    return p["ram_style"] == "distributed" or p["depth"] <= DISTRIBUTED_MAX_DEPTH


def dsp_lanes(in_bits: int, w_bits: int) -> int:
    """PEs one DSP48E2 of mvu.sv computes: 4 at up to 4-bit operands, 3 at up to 8 (Yosys's
    counts on the calibration builds: PE 10 x SIMD 3 at 8-bit inputs is 12 DSPs), else 1."""
    wide = max(in_bits, w_bits)
    return 4 if wide <= 4 else 3 if wide <= 8 else 1


def fifo_style(width: int, depth: int) -> str:
    """fifo.sv's RAM_STYLE_EFF for RAM_STYLE "auto" (FINN's StreamingFIFO_rtl): a shift
    register up to 33 deep (64 when narrower than 12 bits), LUT-RAM up to 257, block RAM up
    to 2028, UltraRAM beyond."""
    if depth <= 33 or (depth <= 64 and width < 12):
        return "shift"
    if depth <= 257 or width < 5:
        return "distributed"
    return "block" if depth <= 2028 else "ultra"


def features(kind: str, p: dict) -> dict[str, float]:
    """The model's features of a unit of ``kind`` with parameters ``p`` (see the module doc)."""
    if kind == "mvau_core":
        pe, simd = p["pe"], p["simd"]
        return {
            "one": 1.0,
            "pe_simd": pe * simd,
            "dsp_slices": math.ceil(pe / dsp_lanes(p["in_bits"], p["w_bits"])) * simd,
            "out_bits": pe * p["acc_bits"],
            "in_bits": simd * p["in_bits"],
        }
    if kind == "mvau_weights":
        w, d = p["width"], p["depth"]
        dist = _is_distributed(p)
        return {
            "one": 1.0,
            "width": w,
            "lutram_bits": w * math.ceil(d / 32) if dist else 0.0,
            "bram_tiles": math.ceil(w / 36) * math.ceil(d / 512) if not dist else 0.0,
            "addr_bits": clog2(d),
        }
    if kind == "thresholding":
        pe, tb = p["pe"], p["t_bits"]
        stages = clog2(p["steps"] + 1)
        cf = math.ceil(p["channels"] / pe)
        small = mid = tiles = 0.0
        for stage in range(stages):  # thresholding.sv: one memory per PE and stage
            depth = cf * 2**stage
            if depth <= 64:
                small += pe * tb * depth
            elif depth <= 512:
                mid += pe * tb * math.ceil(depth / 64)
            else:
                tiles += pe * math.ceil(tb / 18) * math.ceil(depth / 1024)
        return {
            "one": 1.0,
            "pe_in_bits": pe * p["in_bits"] * stages,
            "pe_out_bits": pe * p["out_bits"],
            "small_mem_bits": small,
            "lutram_bits": mid,
            "bram_tiles": tiles,
        }
    if kind == "fifo":
        w, d = p["width"], p["depth"]
        style = fifo_style(w, d)
        return {
            "one": 1.0,
            "width": w,
            "shift_bits": w * max(d, 5) if style == "shift" else 0.0,
            "shift_mux_bits": w * max(d - 5, 0) if style == "shift" else 0.0,
            "lutram_bits": w * math.ceil(d / 32) if style == "distributed" else 0.0,
            "ram_width": w if style != "shift" else 0.0,
            "bram_tiles": math.ceil(w / 36) * math.ceil(d / 512) if style == "block" else 0.0,
        }
    if kind == "dwc":
        return {
            "one": 1.0,
            "in_width": p["in_width"],
            "out_width": p["out_width"],
        }
    raise ConfigError(f"synth model: no unit kind '{kind}' (known: {', '.join(KINDS)})")


# --- unit parameters from a FINN node -----------------------------------------------------------


def _bits(inst, name: str) -> int:
    from qonnx.core.datatype import DataType  # noqa: PLC0415

    return DataType[inst.get_nodeattr(name)].bitwidth()


def mvau_params(inst) -> tuple[dict, dict]:
    """(core, weights) parameters of an MVAU node's CustomOp."""
    pe, simd = inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    wb = _bits(inst, "weightDataType")
    core = {
        "pe": pe,
        "simd": simd,
        "in_bits": _bits(inst, "inputDataType"),
        "w_bits": wb,
        "acc_bits": _bits(inst, "accDataType"),
    }
    weights = {
        "width": pe * simd * wb,
        "depth": (mw * mh) // (pe * simd),
        "ram_style": inst.get_nodeattr("ram_style"),
    }
    return core, weights


def thresholding_params(inst) -> dict:
    return {
        "pe": inst.get_nodeattr("PE"),
        "channels": inst.get_nodeattr("NumChannels"),
        "steps": inst.get_nodeattr("numSteps"),
        "in_bits": _bits(inst, "inputDataType"),
        "t_bits": _bits(inst, "weightDataType"),
        "out_bits": _bits(inst, "outputDataType"),
    }


def node_units(node) -> list[tuple[str, str, dict]]:
    """[(part, kind, params)] of a FINN node: ``part`` as synth_report.json's unit rows name it
    (``core``/``weights`` for an MVAU, ``layer`` otherwise).

    Raises:
        ConfigError: a node kind the model has no unit for.
    """
    from qonnx.custom_op.registry import getCustomOp  # noqa: PLC0415

    inst = getCustomOp(node)
    op = node.op_type
    if op.startswith("MVAU"):
        if inst.get_nodeattr("mem_mode") != "internal_decoupled":
            raise ConfigError(f"synth model: {node.name} has no decoupled weight streamer")
        core, weights = mvau_params(inst)
        return [("core", "mvau_core", core), ("weights", "mvau_weights", weights)]
    if op.startswith("Thresholding"):
        return [("layer", "thresholding", thresholding_params(inst))]
    if op.startswith("StreamingFIFO"):
        width = inst.get_nodeattr("folded_shape")[-1] * _bits(inst, "dataType")
        return [("layer", "fifo", {"width": width, "depth": inst.get_nodeattr("depth")})]
    if op.startswith("StreamingDataWidthConverter"):
        return [
            (
                "layer",
                "dwc",
                {
                    "in_width": inst.get_nodeattr("inWidth"),
                    "out_width": inst.get_nodeattr("outWidth"),
                },
            )
        ]
    raise ConfigError(f"synth model: no calibrated unit for {op} ({node.name})")


# --- the fit -------------------------------------------------------------------------------------


def _matrix(kind: str, rows: list[dict]) -> tuple[list[str], np.ndarray]:
    feats = [features(kind, r["params"]) for r in rows]
    names = list(feats[0])
    return names, np.array([[f[n] for n in names] for f in feats], dtype=float)


def fit(rows: list[dict]) -> dict:
    """Coefficients {kind: {resource: {feature: coef}}} by NNLS, per kind and resource.

    Each column is scaled to unit norm before the solve (NNLS is scale-invariant in exact
    arithmetic; this keeps it well conditioned) and the coefficients scaled back.
    """
    from scipy.optimize import nnls  # noqa: PLC0415

    coeffs: dict = {}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        names, x = _matrix(kind, mine)
        norm = np.linalg.norm(x, axis=0)
        norm[norm == 0] = 1.0
        coeffs[kind] = {}
        for res in RESOURCES:
            y = np.array([r["counts"][res] for r in mine], dtype=float)
            sol, _ = nnls(x / norm, y, maxiter=50 * x.shape[1])
            sol = sol / norm
            coeffs[kind][res] = {n: round(float(c), 6) for n, c in zip(names, sol, strict=True)}
    return coeffs


def fit_summary(rows: list[dict], coeffs: dict) -> dict:
    """Per kind and resource: rows, the sum measured, the sum predicted, the largest error."""
    out: dict = {}
    for kind in coeffs:
        mine = [r for r in rows if r["kind"] == kind]
        out[kind] = {"rows": len(mine)}
        for res in RESOURCES:
            meas = [r["counts"][res] for r in mine]
            pred = [predict_unit(kind, r["params"], coeffs)[res] for r in mine]
            out[kind][res] = {
                "measured": int(sum(meas)),
                "predicted": round(sum(pred), 1),
                "max_abs_error": round(max(abs(a - b) for a, b in zip(meas, pred, strict=True)), 1),
            }
    return out


# --- prediction ----------------------------------------------------------------------------------

_COEFFS: dict | None = None


def load_coeffs(path: Path = COEFF_FILE) -> dict:
    """The shipped coefficients ({kind: {resource: {feature: coef}}})."""
    global _COEFFS
    if path == COEFF_FILE and _COEFFS is not None:
        return _COEFFS
    data = json.loads(Path(path).read_text())["coefficients"]
    if path == COEFF_FILE:
        _COEFFS = data
    return data


def predict_unit(kind: str, params: dict, coeffs: dict | None = None) -> dict[str, float]:
    """Predicted Yosys counts of one unit (see :data:`RESOURCES`)."""
    coeffs = coeffs if coeffs is not None else load_coeffs()
    if kind not in coeffs:
        raise ConfigError(f"synth model: no coefficients for unit kind '{kind}'")
    f = features(kind, params)
    return {res: max(0.0, sum(c * f[n] for n, c in coeffs[kind][res].items())) for res in RESOURCES}


def add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in RESOURCES}


def predict_node(node, coeffs: dict | None = None) -> dict[str, float]:
    """Predicted Yosys counts of a FINN node (an MVAU: compute module plus weight streamer)."""
    total = dict.fromkeys(RESOURCES, 0.0)
    for _, kind, params in node_units(node):
        total = add(total, predict_unit(kind, params, coeffs))
    return total


def predict_model(model, coeffs: dict | None = None) -> tuple[dict, dict[str, dict]]:
    """(design total, per node) predicted for a built dataflow model."""
    per = {n.name: predict_node(n, coeffs) for n in model.graph.node}
    total = dict.fromkeys(RESOURCES, 0.0)
    for v in per.values():
        total = add(total, v)
    return total, per


# --- calibration data ----------------------------------------------------------------------------


def final_model_path(hw_dir: Path) -> Path:
    models = sorted((Path(hw_dir) / "intermediate").glob("*.onnx"))
    if not models:
        raise ConfigError(f"{hw_dir}: no intermediate models (not a qphy hw build directory)")
    return models[-1]


def _per_layer_report(build_dir: Path) -> tuple[Path, dict]:
    """(hw dir, its ``synth_per_layer/synth_report.json``) of a build dir or a hw dir."""
    hw = Path(build_dir) / "hw" if (Path(build_dir) / "hw").is_dir() else Path(build_dir)
    return hw, json.loads((hw / "synth_per_layer" / "synth_report.json").read_text())


def collect_build(build_dir: Path, name: str) -> list[dict]:
    """Calibration rows of one synthesized build (``build_dir/hw`` or a hw dir): one per
    synthesized run; ``copies`` says how many units of the design it counts for (identical
    units are synthesized once), so a design's total is ``sum(copies * counts)``."""
    from qonnx.core.modelwrapper import ModelWrapper  # noqa: PLC0415

    hw, rep = _per_layer_report(build_dir)
    model = ModelWrapper(str(final_model_path(hw)))
    units = {n.name: {part: (kind, p) for part, kind, p in node_units(n)} for n in model.graph.node}
    rows = []
    copies: dict[str, int] = {}
    for u in rep["units"]:
        copies[u["synthesized_as"]] = copies.get(u["synthesized_as"], 0) + 1
    for u in rep["units"]:
        if u["status"] != "ok" or u["synthesized_as"] != u["unit"]:
            continue
        kind, params = units[u["layer"]][u["part"]]
        counts = {res: int(u["resources"][REPORT_KEY[res]]) for res in RESOURCES}
        rows.append(
            {
                "build": name,
                "fpga_part": rep["fpga_part"],
                "unit": u["unit"],
                "kind": kind,
                "params": params,
                "counts": counts,
                "copies": copies[u["unit"]],  # units of the design counted from this run
                "seconds": u.get("seconds"),
            }
        )
    return rows


def design_totals(rows: list[dict], coeffs: dict | None = None) -> dict[str, dict[str, float]]:
    """{resource: {measured, predicted}} summed over a design's rows (their ``copies`` each)."""
    out = {r: {"measured": 0.0, "predicted": 0.0} for r in RESOURCES}
    for row in rows:
        pred = predict_unit(row["kind"], row["params"], coeffs)
        for res in RESOURCES:
            out[res]["measured"] += row["copies"] * row["counts"][res]
            out[res]["predicted"] += row["copies"] * pred[res]
    return out


def load_rows(
    path: Path = DATA_FILE, exclude_builds: tuple[str, ...] = (), held_out: bool = False
) -> list[dict]:
    """The calibration rows (``held_out``: the held-out designs' rows instead; the data's
    ``held_out_builds`` are never fitted, they check the fit)."""
    data = json.loads(Path(path).read_text())
    held = set(data.get("held_out_builds", []))
    return [
        r
        for r in data["rows"]
        if r["build"] not in exclude_builds and ((r["build"] in held) == held_out)
    ]


def held_out_errors(path: Path = DATA_FILE, coeffs: dict | None = None) -> dict:
    """{held-out build: {resource: {measured, predicted, error_pct}}} (design totals)."""
    rows = load_rows(path, held_out=True)
    out = {}
    for build in sorted({r["build"] for r in rows}):
        tot = design_totals([r for r in rows if r["build"] == build], coeffs)
        out[build] = {
            res: {
                "measured": round(v["measured"]),
                "predicted": round(v["predicted"]),
                "error_pct": round(100 * (v["predicted"] - v["measured"]) / v["measured"], 1)
                if v["measured"]
                else None,
            }
            for res, v in tot.items()
        }
    return out


def check_build(build_dir: Path, coeffs: dict | None = None) -> dict:
    """The model against a synthesized build: per resource measured, predicted, error."""
    from qonnx.core.modelwrapper import ModelWrapper  # noqa: PLC0415

    hw, rep = _per_layer_report(build_dir)
    if not rep.get("complete"):
        raise ConfigError(f"{build_dir}: the per-layer synthesis is incomplete")
    total, _ = predict_model(ModelWrapper(str(final_model_path(hw))), coeffs)
    out = {}
    for res in RESOURCES:
        meas = rep["resources"][REPORT_KEY[res]]
        pred = total[res]
        out[res] = {
            "measured": meas,
            "predicted": round(pred),
            "error_pct": round(100.0 * (pred - meas) / meas, 1) if meas else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """``fit [--exclude BUILD ...]``: refit the shipped coefficients from the shipped data
    (its held-out designs left out); ``heldout``: the model on each held-out design of the
    data (totals, measured vs predicted); ``check BUILD_DIR [--exclude BUILD ...]``: the model
    (refitted without the excluded calibration builds) against a synthesized build."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m hw.synth_model")
    p.add_argument("cmd", choices=["fit", "check", "heldout"])
    p.add_argument("build", nargs="?")
    p.add_argument("--exclude", nargs="*", default=[])
    p.add_argument("--data", type=Path, default=DATA_FILE)
    p.add_argument("--out", type=Path, default=COEFF_FILE)
    a = p.parse_args(argv)
    rows = load_rows(a.data, tuple(a.exclude))
    coeffs = fit(rows)
    if a.cmd == "fit":
        builds = sorted({r["build"] for r in rows})
        doc = {
            "what": "NNLS coefficients of hw/synth_model.py: {kind: {resource: {feature: coef}}}",
            "data": a.data.name,
            "builds": builds,
            "rows": len(rows),
            "coefficients": coeffs,
            "fit": fit_summary(rows, coeffs),
            "held_out": held_out_errors(a.data, coeffs),
        }
        a.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"fitted {len(rows)} rows of {len(builds)} builds -> {a.out}")
        return 0
    if a.cmd == "heldout":
        print(json.dumps(held_out_errors(a.data, coeffs), indent=1))
        return 0
    if a.cmd == "check" and a.build is None:
        p.error("check needs a build directory")
    print(json.dumps(check_build(Path(a.build), coeffs), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
