"""Stitcher and stream packing, without Verilator."""

from __future__ import annotations

import numpy as np
import pytest

from hw.stitch import _connections, module_ports
from hw.toolchain import finn_rtllib_dir
from qphy.contracts import StreamSpec
from qphy.host import beats_to_words, pack_beats, unpack_beats, words_to_beats
from sim.rtl_sources import patch_add_multi


def test_add_multi_patch_hoists_function():
    text = (finn_rtllib_dir() / "mvu" / "add_multi.sv").read_text()
    patched = patch_add_multi(text)
    gen_tree = patched.index("genTree")
    assert patched.index("function leaf_load_t init_leaf_loads") < gen_tree
    assert patched.index("LEAF_LOAD = init_leaf_loads();") < gen_tree
    assert patch_add_multi(patched) == patched  # idempotent


def test_module_ports():
    src = """module foo #(parameter W = 8)(
        input ap_clk, input wire [W-1:0] in0_V_TDATA,
        (* X_INTERFACE_INFO = "x" *)
        output logic out0_V_TVALID,
        input [3:0] s_axilite_AWADDR
    );
    endmodule"""
    assert module_ports(src, "foo") == {
        "ap_clk": "input",
        "in0_V_TDATA": "input",
        "out0_V_TVALID": "output",
        "s_axilite_AWADDR": "input",
    }


@pytest.mark.parametrize(
    ("bits", "per_beat", "signed"), [(8, 30, True), (4, 5, False), (8, 1, True)]
)
def test_pack_unpack_roundtrip(bits, per_beat, signed):
    rng = np.random.default_rng(0)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    v = rng.integers(lo, hi, 60)
    stream = StreamSpec("X", bits, signed, per_beat, 60 // per_beat, bits * per_beat)
    beats = beats_to_words(pack_beats(v[None, :], stream))
    assert len(beats) == 60 // per_beat
    assert beats[0] & ((1 << bits) - 1) == int(v[0]) & ((1 << bits) - 1)  # element 0 in LSBs
    assert np.array_equal(unpack_beats(words_to_beats(beats, stream), stream)[0], v)


def test_config_ports_tied_off():
    """FMPadding_rtl/SWG_rtl wrappers carry an AXI-lite port (dynamic mode only): its inputs
    are tied to zero, its outputs left open."""
    src = """module pad #(parameter W = 1)(input ap_clk, input s_axilite_AWVALID,
        output s_axilite_AWREADY, input [4:0] s_axilite_AWADDR, input in0_V_TVALID);
    endmodule"""
    conns = _connections(module_ports(src, "pad"), {"ap_clk": "clk", "in0_V_TVALID": "v"})
    assert conns == [
        ".ap_clk(clk)",
        ".s_axilite_AWVALID('0)",
        ".s_axilite_AWADDR('0)",
        ".in0_V_TVALID(v)",
    ]
