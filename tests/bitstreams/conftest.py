"""A minimal fake hw build directory (what hw/ writes), built from qphy.contracts objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qphy.contracts import HostSpec, Manifest, NodeSpec, QuantSpec, StreamSpec

#: A stand-in for the stitched top: the real port list of hw/stitch.py, one "layer" that reads a
#: memory file through a relative "mem/..." parameter, as the generated RTL does.
FAKE_TOP = """`default_nettype none
module qphy_dataflow_top #(
\tparameter int unsigned IN_WIDTH = {in_w},
\tparameter int unsigned OUT_WIDTH = {out_w}
)(
\tinput  wire                 ap_clk,
\tinput  wire                 ap_rst_n,
\tinput  wire [IN_WIDTH-1:0]  s_axis_tdata,
\tinput  wire                 s_axis_tvalid,
\toutput wire                 s_axis_tready,
\toutput wire [OUT_WIDTH-1:0] m_axis_tdata,
\toutput wire                 m_axis_tvalid,
\tinput  wire                 m_axis_tready
);
\tfake_layer #(.IN_WIDTH(IN_WIDTH), .OUT_WIDTH(OUT_WIDTH), .INIT_FILE("mem/layer0_memblock.dat"))
\tlayer0_i (.*);
endmodule
`default_nettype wire
"""

FAKE_LAYER = """`default_nettype none
module fake_layer #(
\tparameter int unsigned IN_WIDTH = 8,
\tparameter int unsigned OUT_WIDTH = 8,
\tparameter INIT_FILE = ""
)(
\tinput  wire                 ap_clk,
\tinput  wire                 ap_rst_n,
\tinput  wire [IN_WIDTH-1:0]  s_axis_tdata,
\tinput  wire                 s_axis_tvalid,
\toutput wire                 s_axis_tready,
\toutput wire [OUT_WIDTH-1:0] m_axis_tdata,
\toutput wire                 m_axis_tvalid,
\tinput  wire                 m_axis_tready
);
\tlogic [OUT_WIDTH-1:0] bias [0:0];
\tinitial if (INIT_FILE != "") $readmemh(INIT_FILE, bias);
\tlogic [OUT_WIDTH-1:0] data;
\tlogic full;
\tassign s_axis_tready = !full || m_axis_tready;
\tassign m_axis_tvalid = full;
\tassign m_axis_tdata = data;
\talways_ff @(posedge ap_clk) begin
\t\tif (!ap_rst_n) full <= 1'b0;
\t\telse if (s_axis_tready) begin
\t\t\tfull <= s_axis_tvalid;
\t\t\tdata <= OUT_WIDTH'(s_axis_tdata) ^ bias[0];
\t\tend
\tend
endmodule
`default_nettype wire
"""


def _stream(elems: int, bits: int) -> StreamSpec:
    return StreamSpec(
        datatype=f"INT{bits}",
        elem_bits=bits,
        signed=True,
        elems_per_beat=elems,
        beats_per_frame=1,
        width_bits=elems * bits,
    )


def make_hw_dir(
    root: Path,
    in_elems: int = 30,
    out_elems: int = 20,
    fpga_part: str = "xczu7ev-ffvc1156-2-e",
    name: str = "fullycon_w4a4",
) -> Path:
    """``root/name/hw`` with rtl/src (package, layer, top), rtl/mem, rtl/manifest.json."""
    hw = root / name / "hw"
    src, mem = hw / "rtl" / "src", hw / "rtl" / "mem"
    src.mkdir(parents=True)
    mem.mkdir()
    in_s, out_s = _stream(in_elems, 8), _stream(out_elems, 8)
    (src / "qphy_dataflow_top.sv").write_text(
        FAKE_TOP.format(in_w=in_s.width_bits, out_w=out_s.width_bits)
    )
    (src / "fake_layer.sv").write_text(FAKE_LAYER)
    (src / "fake_pkg.sv").write_text("package fake_pkg;\n\tlocalparam int X = 1;\nendpackage\n")
    (mem / "layer0_memblock.dat").write_text("00\n")
    node = NodeSpec(
        name="layer0",
        op_type="MVAU_rtl",
        module="fake_layer",
        in_width_bits=in_s.width_bits,
        out_width_bits=out_s.width_bits,
        files=["fake_layer.sv"],
    )
    host = HostSpec(
        input_quant=QuantSpec(scale=1.0, bits=8, signed=True, narrow=False),
        input_shape=[in_elems],
        input_datatype="INT8",
        output_datatype="INT8",
    )
    Manifest(
        fpga_part=fpga_part,
        clock_mhz=200.0,
        input=in_s,
        output=out_s,
        nodes=[node],
        host=host,
        analytic_cycles_per_frame=20,
        analytic_latency_cycles=199,
    ).write(hw / "rtl" / Manifest.FILE)
    (hw / "hw_report.json").write_text("{}\n")
    return hw


@pytest.fixture
def hw_dir(tmp_path) -> Path:
    return make_hw_dir(tmp_path / "hwbuild")


@pytest.fixture(scope="session")
def small_synth_build(tmp_path_factory):
    """A ``qphy build``-shaped directory of a 30 -> 16 -> 20 w4a4 FullyCon (shared by the
    whole-design and the per-layer Yosys tests): hw/ from the real hw build, report.json a
    verdict-shaped Report carrying hw's estimate (no simulation: the synthesis reads only hw/
    and merges into report.json; a test that writes there works on a copy).
    Returns (dir, estimate)."""
    from hw.config import HwBuildConfig
    from hw.runner import run_build
    from qphy.contracts import Report
    from tests.hw.fixture_export import make_export

    root = tmp_path_factory.mktemp("synth_small")
    export = make_export(root / "export", n_golden=8, hidden=16, n_hidden_layers=1)
    run_build(export / "model.qonnx.onnx", HwBuildConfig(target_cycles=64), root / "hw")
    est = json.loads((root / "hw" / "hw_report.json").read_text())["estimated_resources"]
    Report(
        variant="fullycon_w4a4",
        bit_exact=True,
        vectors_checked=8,
        mismatches=0,
        latency_cycles=1,
        cycles_per_frame=1,
        clock_mhz=200.0,
        latency_us=0.005,
        throughput_vectors_per_s=2e8,
        budget_us=1000.0,
        within_budget=True,
        fpga_part="xczu3eg-sbva484-1-e",
        estimated_resources=est,
        fifo_depths={},
        tool_versions={},
    ).write(root / "report.json")
    return root, est
