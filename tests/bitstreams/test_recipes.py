"""bitstreams: recipes, generated Vivado flows (executed against stub Vivado commands in a real
Tcl 8.6 interpreter), report parsers, the Vivado check and atomic output directories."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tkinter
from pathlib import Path

import pytest

from bitstreams import build
from bitstreams.boards import BOARDS, board, make_recipe, stream_dma
from bitstreams.reports import (
    ReportParseError,
    fmax_mhz,
    parse_power,
    parse_timing_summary,
    parse_utilization,
)
from hw.toolchain import find_tool, in_ci, require_vivado
from qphy.contracts import Manifest, StreamSpec
from qphy.errors import ConfigError, ToolNotFound
from tests.bitstreams.conftest import make_hw_dir

# ---- recipes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width_bits", "beat_bytes", "dma_bytes"),
    [(240, 30, 2), (160, 20, 4), (64, 8, 8), (16, 2, 2), (4, 1, 1), (2048, 256, 128), (36, 5, 1)],
)
def test_stream_dma_width_divides_the_beat(width_bits, beat_bytes, dma_bytes):
    s = StreamSpec("INT8", 8, True, 1, 1, width_bits)
    d = stream_dma(s)
    assert (d.beat_bytes, d.dma_bytes) == (beat_bytes, dma_bytes)
    assert d.needs_converter == (beat_bytes != dma_bytes)


def test_boards_use_finn_parts():
    assert board("ZCU104").part == "xczu7ev-ffvc1156-2-e"
    assert board("zcu102").part == "xczu9eg-ffvb1156-2-e"
    assert board("zcu111").part == "xczu28dr-ffvg1517-2-e"
    assert board("rfsoc4x2").part == "xczu48dr-ffvg1517-2-e"
    with pytest.raises(ConfigError, match="unknown board 'pynq-z2'.*zcu104"):
        board("pynq-z2")


def test_design_for_another_family_is_refused(tmp_path):
    hw = make_hw_dir(tmp_path, fpga_part="xc7z020clg400-1")
    with pytest.raises(ConfigError, match="rebuild it with --fpga-part xczu7ev"):
        build.generate(hw, "zcu104", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dma_bound_design_is_flagged(hw_dir):
    m = Manifest.read(hw_dir / "rtl" / Manifest.FILE)
    r = make_recipe(m, board("zcu104"), "x")
    # 30-byte beats through a 2-byte DMA: 15 cycles per frame, under the 20-cycle interval
    assert r.dma_cycles_per_frame == 15 and not r.dma_limited
    assert r.pending_frames >= 2 * (199 // 20)


def test_not_a_hw_dir(tmp_path):
    with pytest.raises(ConfigError, match="not a hw build directory"):
        build.generate(tmp_path, "zcu104", tmp_path / "out")


# ---- generation ----------------------------------------------------------------------------


def _settings(out: Path) -> dict[str, str]:
    interp = tkinter.Tcl()
    interp.eval(f"source {{{out / 'settings.tcl'}}}")
    names = interp.eval("array names qphy").split()
    return {n: interp.eval(f"set qphy({n})") for n in names}


@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_generate_each_board(hw_dir, tmp_path, board_name):
    out = tmp_path / f"bit_{board_name}"
    files = build.generate(hw_dir, board_name, out)
    assert all(f.is_file() and out in f.parents for f in files)
    for rel in (
        "settings.tcl",
        "common.tcl",
        "ooc.tcl",
        "bitstream.tcl",
        "constraints/ooc.xdc",
        "rtl/qphy_accel.v",
        "rtl/manifest.json",
        "rtl/mem/layer0_memblock.dat",
        "bitstream_manifest.json",
    ):
        assert (out / rel).is_file(), rel
    s = _settings(out)
    b = BOARDS[board_name]
    assert s["part"] == b.part and s["board_part_glob"] == b.board_part_glob
    assert s["top"] == "qphy_dataflow_top" and s["wrapper"] == "qphy_accel"
    assert s["clock_mhz"] == "200"
    # compile order: packages first, the stitched top last
    assert s["sources"].split() == [
        "rtl/src/fake_pkg.sv",
        "rtl/src/fake_layer.sv",
        "rtl/src/qphy_dataflow_top.sv",
    ]
    # 240-bit input: 30-byte beats, 16-bit DMA + converter; 160-bit output: 20 bytes, 32-bit DMA
    assert (s["mm2s_beat_bytes"], s["mm2s_dma_bytes"]) == ("30", "2")
    assert (s["s2mm_beat_bytes"], s["s2mm_dma_bytes"]) == ("20", "4")
    assert (
        "create_clock -period 5.0000 -name ap_clk [get_ports ap_clk]"
        in (out / "constraints/ooc.xdc").read_text()
    )
    wrapper = (out / "rtl/qphy_accel.v").read_text()
    assert "input  wire [239:0]  s_axis_tdata" in wrapper
    assert "output wire [159:0]  m_axis_tdata" in wrapper
    record = json.loads((out / "bitstream_manifest.json").read_text())
    assert record["recipe"]["board"]["part"] == b.part
    assert set(record["inputs_sha256"]) == {
        "rtl/src/fake_pkg.sv",
        "rtl/src/fake_layer.sv",
        "rtl/src/qphy_dataflow_top.sv",
        "rtl/mem/layer0_memblock.dat",
        "rtl/manifest.json",
        "hw_report.json",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in record["inputs_sha256"].values())
    assert "bitstream.tcl" in record["flow_sha256"]


def test_generate_replaces_out_dir_whole(hw_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    build.generate(hw_dir, "zcu104", out)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_generate_copies_saif(hw_dir, tmp_path):
    saif = tmp_path / "act.saif"
    saif.write_text("(SAIFILE)\n")
    out = tmp_path / "out"
    build.generate(hw_dir, "zcu104", out, saif=saif, saif_strip_path="TOP/dut")
    s = _settings(out)
    assert s["saif"] == "activity/act.saif" and (out / s["saif"]).is_file()
    assert s["saif_strip_path"] == "TOP/dut"


# ---- the generated TCL, run in Tcl 8.6 with every Vivado command stubbed ------------------

#: Vivado commands become recorders; those whose result the flow uses return plausible values.
#: launch_runs/write_hw_platform create the files Vivado would.
_STUBS = r"""
set ::calls {}
proc unknown {args} { lappend ::calls $args; return [lindex $args end] }
proc get_board_parts {args} {
    lappend ::calls [list get_board_parts {*}$args]
    return {xilinx.com:BOARD:part0:1.0 xilinx.com:BOARD:part0:1.1}
}
proc get_property {name obj} {
    lappend ::calls [list get_property $name $obj]
    switch -glob -- $name {
        PROGRESS { return "100%" }
        DIRECTORY { return $::impl_dir }
        *ACT_FREQMHZ { return 187.498 }
        default { return "" }
    }
}
proc make_wrapper {args} { lappend ::calls [list make_wrapper {*}$args]; return wrapper.v }
proc launch_runs {args} {
    lappend ::calls [list launch_runs {*}$args]
    file mkdir $::impl_dir
    close [open [file join $::impl_dir qphy_bd_wrapper.bit] w]
    set hh [file join $::flow build bitstream project qphy.gen sources_1 bd qphy_bd hw_handoff]
    file mkdir $hh
    close [open [file join $hh qphy_bd.hwh] w]
}
proc write_hw_platform {args} {
    lappend ::calls [list write_hw_platform {*}$args]
    close [open [lindex $args end] w]
}
"""


def _run_stubbed(flow: Path, script: str) -> list[list[str]]:
    interp = tkinter.Tcl()
    interp.eval(_STUBS)
    interp.eval(f"set ::flow {{{flow}}}; set ::impl_dir {{{flow / 'impl'}}}")
    interp.eval("set argv {2}; set argc 1")
    interp.eval(f"source {{{flow / script}}}")
    n = int(interp.eval("llength $::calls"))
    return [list(interp.splitlist(interp.eval(f"lindex $::calls {i}"))) for i in range(n)]


def _find(calls, name):
    return [c for c in calls if c[0] == name]


def test_ooc_flow_runs_in_tcl(hw_dir, tmp_path):
    out = tmp_path / "out"
    build.generate(hw_dir, "zcu102", out)
    calls = _run_stubbed(out, "ooc.tcl")
    reads = [c[-1] for c in _find(calls, "read_verilog")]
    assert [Path(r).name for r in reads] == ["fake_pkg.sv", "fake_layer.sv", "qphy_dataflow_top.sv"]
    assert all(c[1] == "-sv" for c in _find(calls, "read_verilog"))
    (synth,) = _find(calls, "synth_design")
    assert synth[1:] == [
        "-mode",
        "out_of_context",
        "-top",
        "qphy_dataflow_top",
        "-part",
        "xczu9eg-ffvb1156-2-e",
    ]
    assert _find(calls, "read_xdc")[0][1:3] == ["-mode", "out_of_context"]
    names = [c[0] for c in calls]
    assert names.index("synth_design") < names.index("report_utilization")
    assert names.index("report_timing_summary") < names.index("report_power")
    # the sources Vivado reads name the memory files by absolute path, inside the flow dir
    top = Path(reads[-1]).read_text()
    memdir = (out / "rtl" / "mem").resolve()
    assert f'.INIT_FILE("{memdir}/layer0_memblock.dat")' in top
    assert (memdir / "layer0_memblock.dat").is_file()


def test_bitstream_flow_runs_in_tcl(hw_dir, tmp_path):
    out = tmp_path / "out"
    build.generate(hw_dir, "zcu104", out)
    calls = _run_stubbed(out, "bitstream.tcl")
    assert _find(calls, "create_project")[0][-2:] == ["-part", "xczu7ev-ffvc1156-2-e"]
    bp = [c for c in calls if c[:2] == ["set_property", "board_part"]]
    assert bp[0][2] == "xilinx.com:BOARD:part0:1.1"  # the newest board-file revision
    cells = {c[-1]: c for c in _find(calls, "create_bd_cell")}
    assert cells["accel"][1:5] == ["-type", "module", "-reference", "qphy_accel"]
    assert cells["zynq_ps"][4].startswith("xilinx.com:ip:zynq_ultra_ps_e")
    for ip in ("dma", "sc_ctrl", "sc_mem", "rst", "dwc_in", "dwc_out"):
        assert ip in cells, ip
    props = {}
    for c in calls:
        if c[:2] == ["set_property", "-dict"]:
            kv = tkinter.Tcl().splitlist(c[2])
            props.setdefault(c[3], {}).update(dict(zip(kv[::2], kv[1::2], strict=True)))
    assert props["dma"]["CONFIG.c_m_axis_mm2s_tdata_width"] == "16"
    assert props["dma"]["CONFIG.c_s_axis_s2mm_tdata_width"] == "32"
    assert props["dma"]["CONFIG.c_include_sg"] == "0"
    assert props["dwc_in"]["CONFIG.S_TDATA_NUM_BYTES"] == "2"
    assert props["dwc_in"]["CONFIG.M_TDATA_NUM_BYTES"] == "30"
    assert props["dwc_out"]["CONFIG.S_TDATA_NUM_BYTES"] == "20"
    assert props["dwc_out"]["CONFIG.M_TDATA_NUM_BYTES"] == "4"
    assert props["zynq_ps"]["CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] == "200"
    assert props["zynq_ps"]["CONFIG.PSU__USE__S_AXI_GP2"] == "1"
    preset = _find(calls, "apply_bd_automation")[0]
    assert "apply_board_preset" in preset[4]
    clk = [c for c in _find(calls, "connect_bd_net") if c[1] == "zynq_ps/pl_clk0"][0]
    assert {"accel/ap_clk", "dwc_in/aclk", "dwc_out/aclk", "dma/m_axi_s2mm_aclk"} <= set(clk)
    intf = [tuple(c[1:]) for c in _find(calls, "connect_bd_intf_net")]
    assert ("dma/M_AXIS_MM2S", "dwc_in/S_AXIS") in intf
    assert ("dwc_in/M_AXIS", "accel/s_axis") in intf
    assert ("accel/m_axis", "dwc_out/S_AXIS") in intf
    assert ("dwc_out/M_AXIS", "dma/S_AXIS_S2MM") in intf
    assert ("sc_mem/M00_AXI", "zynq_ps/S_AXI_HP0_FPD") in intf
    names = [c[0] for c in calls]
    for earlier, later in [
        ("validate_bd_design", "launch_runs"),
        ("launch_runs", "wait_on_run"),
        ("open_run", "report_utilization"),
        ("report_timing_summary", "report_power"),
    ]:
        assert names.index(earlier) < names.index(later)
    assert _find(calls, "launch_runs")[0][1:] == [
        "impl_1",
        "-to_step",
        "write_bitstream",
        "-jobs",
        "2",
    ]
    assert "read_saif" not in names  # vectorless without a SAIF
    for ext in (".bit", ".hwh", ".xsa"):
        assert (out / f"fullycon_w4a4_zcu104{ext}").is_file()
    assert "pl_clk0_mhz 187.498" in (out / "reports" / "clock.txt").read_text()


def test_no_converter_when_dma_width_fits(tmp_path):
    hw = make_hw_dir(tmp_path, in_elems=8, out_elems=4)  # 64-bit in, 32-bit out
    out = tmp_path / "out"
    build.generate(hw, "zcu104", out)
    calls = _run_stubbed(out, "bitstream.tcl")
    cells = {c[-1] for c in _find(calls, "create_bd_cell")}
    assert "dwc_in" not in cells and "dwc_out" not in cells
    intf = [tuple(c[1:]) for c in _find(calls, "connect_bd_intf_net")]
    assert ("dma/M_AXIS_MM2S", "accel/s_axis") in intf
    assert ("accel/m_axis", "dma/S_AXIS_S2MM") in intf


def test_saif_is_read_before_report_power(hw_dir, tmp_path):
    saif = tmp_path / "act.saif"
    saif.write_text("(SAIFILE)\n")
    out = tmp_path / "out"
    build.generate(hw_dir, "zcu104", out, saif=saif, saif_strip_path="TOP/dut")
    calls = _run_stubbed(out, "ooc.tcl")
    (rs,) = _find(calls, "read_saif")
    assert rs[rs.index("-strip_path") + 1] == "TOP/dut"
    assert rs[-1].endswith("activity/act.saif")
    names = [c[0] for c in calls]
    assert names.index("read_saif") < names.index("report_power")


# ---- the wrapper is legal Verilog (Verilator lint) -------------------------------------------


@pytest.mark.rtl
def test_wrapper_lints_with_verilator(hw_dir, tmp_path):
    verilator = find_tool("verilator")
    if verilator is None:
        if in_ci():
            pytest.fail("verilator not found (run `make setup`)")
        pytest.skip("verilator not found (run `make setup`)")
    out = tmp_path / "out"
    build.generate(hw_dir, "zcu104", out)
    srcs = [out / "rtl/src" / n for n in ("fake_pkg.sv", "fake_layer.sv", "qphy_dataflow_top.sv")]
    proc = subprocess.run(
        [str(verilator), "--lint-only", "-Wall", "-Wno-UNUSEDSIGNAL", "-Wno-UNUSEDPARAM"]
        + ["--top-module", "qphy_accel", *map(str, srcs), str(out / "rtl/qphy_accel.v")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


# ---- report parsers (hand-written samples in the layout Vivado 2024.x prints) ---------------

# Hand-written sample, not a real run: rows/columns as in report_utilization of UltraScale+.
UTIL_SAMPLE = """\
1. CLB Logic
------------

+----------------------------+-------+-------+------------+-----------+-------+
|          Site Type         |  Used | Fixed | Prohibited | Available | Util% |
+----------------------------+-------+-------+------------+-----------+-------+
| CLB LUTs*                  | 12345 |     0 |          0 |    230400 |  5.36 |
|   LUT as Logic             | 11000 |     0 |          0 |    230400 |  4.77 |
| CLB Registers              | 23456 |     0 |          0 |    460800 |  5.09 |
+----------------------------+-------+-------+------------+-----------+-------+

3. BLOCKRAM
-----------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    | 76.5 |     0 |          0 |       312 | 24.52 |
|   RAMB36/FIFO*    |   70 |     0 |          0 |       312 | 22.44 |
|   RAMB18          |   13 |     0 |          0 |       624 |  2.08 |
| URAM              |    0 |     0 |          0 |        96 |  0.00 |
+-------------------+------+-------+------------+-----------+-------+

4. ARITHMETIC
-------------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |  164 |     0 |          0 |      1728 |  9.49 |
|   DSP48E2 only |  164 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+
"""

# Hand-written sample of report_timing_summary's Design Timing Summary.
TIMING_SAMPLE = """\
------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)  THS Failing Endpoints  THS Total Endpoints     WPWS(ns)     TPWS(ns)  TPWS Failing Endpoints  TPWS Total Endpoints
    -------      -------  ---------------------  -------------------      -------      -------  ---------------------  -------------------     --------     --------  ----------------------  --------------------
     -0.250       -3.100                     17                45678        0.021        0.000                      0                45678        1.958        0.000                       0                 20001


Timing constraints are not met.
"""  # noqa: E501

# Hand-written sample of report_power's summary table.
POWER_SAMPLE = """\
1. Summary
----------

+--------------------------+--------------+
| Total On-Chip Power (W)  | 3.912        |
| Design Power Budget (W)  | Unspecified* |
| Power Budget Margin (W)  | NA           |
| Dynamic (W)              | 3.231        |
| Device Static (W)        | 0.681        |
| Effective TJA (C/W)      | 1.0          |
| Max Ambient (C)          | 96.1         |
| Junction Temperature (C) | 28.9         |
| Confidence Level         | Low          |
| Setting File             | ---          |
| Simulation Activity File | ---          |
| Design Nets Matched      | NA           |
+--------------------------+--------------+
"""


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


# ---- Vivado discovery, atomicity, and the run plumbing with a stand-in vivado --------------


@pytest.fixture
def no_vivado(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("XILINX_VIVADO", raising=False)


def _siblings(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((name, f".{name}")))


def test_run_vivado_without_vivado_writes_nothing(no_vivado, tmp_path):
    out = tmp_path / "bits"
    with pytest.raises(ToolNotFound, match="vivado.*-v /tools/Xilinx:/tools/Xilinx:ro"):
        build.run_vivado(out, "ooc")
    assert not out.exists() and _siblings(tmp_path, "bits") == []


def test_build_bitstream_without_vivado_writes_nothing(no_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    with pytest.raises(ToolNotFound, match="XILINX_VIVADO"):
        build.build_bitstream(hw_dir, "zcu104", out)
    assert not out.exists() and _siblings(tmp_path, "bits") == []


def test_run_vivado_without_vivado_keeps_generated_flow(no_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    build.generate(hw_dir, "zcu104", out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ToolNotFound):
        build.run_vivado(out, "bitstream")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_bad_mode_is_a_config_error(hw_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown Vivado mode 'impl'"):
        build.run_vivado(tmp_path / "x", "impl")


#: A stand-in for vivado: writes the hand-written report samples and the outputs the flow
#: would, so the Python side (discovery, run, parse, manifest, atomic publish) is exercised.
FAKE_VIVADO = """#!/bin/sh
log=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in -log) log="$2"; shift;; -source) script="$2"; shift;; esac; shift
done
echo "****** Vivado v2024.2 (64-bit)" > "$log"
[ -n "$FAIL" ] && { echo "ERROR: [Synth 8-439] module 'x' not found" >> "$log"; exit 1; }
mkdir -p reports
case "$script" in *ooc.tcl) p=ooc_;; *) p=;; esac
cp "$SAMPLES/util.rpt" reports/${p}utilization.rpt
cp "$SAMPLES/timing.rpt" reports/${p}timing_summary.rpt
cp "$SAMPLES/power.rpt" reports/${p}power.rpt
case "$script" in *bitstream.tcl)
  printf 'requested_mhz 200\\npl_clk0_mhz 187.498\\n' > reports/clock.txt
  for e in bit hwh xsa; do echo x > fullycon_w4a4_zcu104.$e; done;;
esac
"""


@pytest.fixture
def fake_vivado(monkeypatch, tmp_path):
    root = tmp_path / "Xilinx" / "Vivado" / "2024.2"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "vivado"
    exe.write_text(FAKE_VIVADO)
    exe.chmod(0o755)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "util.rpt").write_text(UTIL_SAMPLE)
    (samples / "timing.rpt").write_text(TIMING_SAMPLE)
    (samples / "power.rpt").write_text(POWER_SAMPLE)
    empty = tmp_path / "empty_bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("XILINX_VIVADO", str(root))
    monkeypatch.setenv("SAMPLES", str(samples))
    monkeypatch.delenv("FAIL", raising=False)
    return exe


def test_require_vivado_under_xilinx_vivado(fake_vivado):
    assert require_vivado() == fake_vivado


def test_build_bitstream_with_stand_in_vivado(fake_vivado, hw_dir, tmp_path):
    out = tmp_path / "bits"
    result = build.build_bitstream(hw_dir, "zcu104", out, "bitstream", jobs=2)
    assert result["vivado"] == "2024.2"
    rep = result["reports"]
    assert rep["utilization"]["LUT"]["used"] == 12345
    assert rep["power"]["total_on_chip_w"] == 3.912
    # Fmax against the clock the PS really makes (187.498 MHz)
    assert rep["timing"]["fmax_mhz"] == pytest.approx(1000 / (1000 / 187.498 + 0.25), abs=0.01)
    record = json.loads((out / "bitstream_manifest.json").read_text())
    outs = record["runs"]["bitstream"]["outputs_sha256"]
    assert {"fullycon_w4a4_zcu104.bit", "fullycon_w4a4_zcu104.hwh"} <= set(outs)
    assert _siblings(tmp_path, "bits") == ["bits"]
    # then the OOC flow on the same directory keeps the bitstream run
    run = build.run_vivado(out, "ooc")
    assert run["reports"]["timing"]["fmax_mhz"] == pytest.approx(1000 / 5.25, abs=0.01)
    record = json.loads((out / "bitstream_manifest.json").read_text())
    assert set(record["runs"]) == {"bitstream", "ooc"}
    assert (out / "fullycon_w4a4_zcu104.bit").is_file()


def test_failed_vivado_leaves_no_out_dir_but_its_log(fake_vivado, hw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    out = tmp_path / "bits"
    with pytest.raises(build.VivadoError, match=r"ERROR: \[Synth 8-439\]"):
        build.build_bitstream(hw_dir, "zcu104", out, "ooc")
    assert not out.exists()
    assert _siblings(tmp_path, "bits") == ["bits.vivado_ooc.log"]


# ---- real Vivado ---------------------------------------------------------------------------


@pytest.fixture
def vivado():
    try:
        return require_vivado()
    except ToolNotFound as exc:
        pytest.skip(str(exc))


@pytest.mark.vivado
@pytest.mark.slow
def test_ooc_synthesis_with_vivado(vivado, hw_dir, tmp_path):
    run = build.build_bitstream(hw_dir, "zcu104", tmp_path / "bits", "ooc", timeout_s=3600)
    assert run["reports"]["utilization"]["LUT"]["used"] > 0
    assert run["reports"]["timing"]["met"]


@pytest.mark.vivado
@pytest.mark.slow
def test_bitstream_with_vivado(vivado, hw_dir, tmp_path):
    run = build.build_bitstream(hw_dir, "zcu104", tmp_path / "bits", timeout_s=4 * 3600)
    assert (tmp_path / "bits" / "fullycon_w4a4_zcu104.bit").is_file()
    assert run["reports"]["power"]["total_on_chip_w"] > 0


@pytest.mark.parametrize("command", ["bitstream", "synth"])
def test_cli_without_vivado_is_one_line_tool_not_found(command, hw_dir, tmp_path):
    """`qphy bitstream|synth` without Vivado: one line naming how to mount it, a non-zero exit,
    and nothing written."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XILINX_VIVADO"}
    env["PATH"] = str(tmp_path / "empty")
    out = tmp_path / "bits"
    res = subprocess.run(
        [sys.executable, "-m", "qphy.cli", command, str(hw_dir), "--board", "zcu104"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("qphy: error: ToolNotFound: required tool"), (
        res.stderr
    )
    assert "XILINX_VIVADO" in lines[0]
    assert not out.exists() and _siblings(tmp_path, "bits") == []
