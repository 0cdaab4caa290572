"""bitstreams: recipes and the generated Vivado flows (executed against stub Vivado commands in
a real Tcl 8.6 interpreter). Report parsers: test_reports.py; the Vivado check, atomic output
directories and the run plumbing: test_vivado_run.py."""

from __future__ import annotations

import json
import re
import subprocess
import tkinter
from pathlib import Path

import pytest

from bitstreams import build
from bitstreams.boards import BOARDS, board, make_recipe, stream_dma
from qphy.contracts import Manifest, StreamSpec
from qphy.errors import ConfigError
from tests.bitstreams.conftest import make_hw_dir
from tests.tools import tool_or_skip

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
    build.generate(hw_dir, "zcu104", out)
    (out / "stale.txt").write_text("old")
    build.generate(hw_dir, "zcu104", out)  # a previous qphy output: replaced as a whole
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_generate_never_replaces_a_users_folder(hw_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and is not a qphy output"):
        build.generate(hw_dir, "zcu104", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


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
    verilator = tool_or_skip("verilator", "run `make setup`")
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
