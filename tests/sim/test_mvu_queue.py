"""Regression: finn-rtllib's MVU output queue is too short for a core that yields every cycle.

A 3x3 conv on 2 channels in the SWG's parallel-window mode gives an MVAU with SIMD = MW = 18 and
PE = MH: one result per cycle. Without FIFOs a stalled consumer then overflowed mvu_vvu_axi's
output queue (ConvSquCsiNet width 16: "Overflowing output queue", simulation stopped): it is
one entry short for any SIMD (registered lock) and two for SIMD not a power of two (mvu.sv's
pipeline is one stage deeper than assumed). hw/export.py sizes it right. One small MVU,
Verilated alone, shows both sides (upstream measured failing at SIMD 4 and 6).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.export import patch_mvu_output_queue
from hw.toolchain import finn_rtllib_dir
from sim.rtl_sources import patch_add_multi
from sim.verilator import build, run_test

PE, ACT_BITS, W_BITS, ACCU_BITS = 2, 4, 4, 16
TOP = "qphy_mvu_queue_top"


def _wrapper(weights: np.ndarray) -> str:
    simd = weights.shape[1]
    """Top: weights constant and always valid, activations in on s_axis, results on m_axis."""
    word = 0
    for pe in range(PE):
        for s in range(simd):
            word |= (int(weights[pe, s]) & (2**W_BITS - 1)) << ((pe * simd + s) * W_BITS)
    w_width = (PE * simd * W_BITS + 7) // 8 * 8
    a_width = (simd * ACT_BITS + 7) // 8 * 8
    o_width = (PE * ACCU_BITS + 7) // 8 * 8
    return f"""module {TOP} (
    input wire ap_clk, input wire ap_rst_n,
    input wire [{a_width - 1}:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    output wire [{o_width - 1}:0] m_axis_tdata, output wire m_axis_tvalid,
    input wire m_axis_tready);
  wire w_ready;
  mvu_vvu_axi #(.IS_MVU(1), .VERSION(2), .MW({simd}), .MH({PE}), .PE({PE}), .SIMD({simd}),
    .ACTIVATION_WIDTH({ACT_BITS}), .WEIGHT_WIDTH({W_BITS}), .ACCU_WIDTH({ACCU_BITS}),
    .SIGNED_ACTIVATIONS(1), .FORCE_BEHAVIORAL(1)) mvu (
    .ap_clk(ap_clk), .ap_clk2x(ap_clk), .ap_rst_n(ap_rst_n),
    .s_axis_weights_tdata({w_width}'h{word:x}), .s_axis_weights_tvalid(1'b1),
    .s_axis_weights_tready(w_ready),
    .s_axis_input_tdata(s_axis_tdata), .s_axis_input_tvalid(s_axis_tvalid),
    .s_axis_input_tready(s_axis_tready),
    .m_axis_output_tdata(m_axis_tdata), .m_axis_output_tvalid(m_axis_tvalid),
    .m_axis_output_tready(m_axis_tready));
endmodule
"""


def _run(tmp_path, simd: int, fixed: bool, seed: int = 3) -> tuple[bool, np.ndarray, np.ndarray]:
    """Build and run the bench; (finished, expected, received)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-8, 8, (PE, simd))
    inputs = rng.integers(-8, 8, (200, simd))
    expected = inputs @ weights.T
    src = tmp_path / "src"
    src.mkdir()
    mvu_dir = finn_rtllib_dir() / "mvu"
    for name in ("mvu_pkg.sv", "mvu.sv", "mvu_vvu_8sx9_dsp58.sv", "replay_buffer.sv"):
        (src / name).write_text((mvu_dir / name).read_text())
    (src / "add_multi.sv").write_text(patch_add_multi((mvu_dir / "add_multi.sv").read_text()))
    axi = (mvu_dir / "mvu_vvu_axi.sv").read_text()
    (src / "mvu_vvu_axi.sv").write_text(patch_mvu_output_queue(axi) if fixed else axi)
    (src / f"{TOP}.sv").write_text(_wrapper(weights))
    sources = [src / "mvu_pkg.sv"] + sorted(p for p in src.iterdir() if p.name != "mvu_pkg.sv")
    build(sources, TOP, tmp_path / "obj", 600)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = {
        "inputs": inputs.tolist(),
        "expected": expected.tolist(),
        "results": str(run_dir / "results.json"),
        "act_bits": ACT_BITS,
        "accu_bits": ACCU_BITS,
        "pe": PE,
        "seed": seed,
    }
    (run_dir / "job.json").write_text(json.dumps(job))
    run_test(
        tmp_path / "obj",
        TOP,
        "tests.sim.tb_mvu_queue",
        run_dir,
        [f"+qphy_job={run_dir / 'job.json'}"],
        600,
        seed,
    )
    results = run_dir / "results.json"
    if not results.is_file():
        return False, expected, np.zeros((0, PE))
    return True, expected, np.array(json.loads(results.read_text())["received"])


def test_patch_sizes_queue_for_the_core_and_is_idempotent():
    text = (finn_rtllib_dir() / "mvu" / "mvu_vvu_axi.sv").read_text()
    fixed = patch_mvu_output_queue(text)
    assert "MVU_CORE_DEPTH = 4 + $clog2(SIMD) + (SIMD == 1)" in fixed
    assert patch_mvu_output_queue(fixed) == fixed
    # The bound is mvu.sv's own pipeline depth (the `last` flag's shift register).
    core = (finn_rtllib_dir() / "mvu" / "mvu.sv").read_text()
    assert "PIPELINE_DEPTH = 3 + $clog2(SIMD) + (SIMD == 1) + 1;" in core


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize(
    ("simd", "fixed"), [(6, False), (6, True), (4, True)], ids=["upstream", "fixed", "fixed-pow2"]
)
def test_mvu_output_queue_under_stalls(verilator, tmp_path, simd, fixed):
    """SIMD = MW, PE = MH: one result per cycle; long sink stalls. Upstream's queue overflows
    and the simulation stops; with the fix every result arrives, in order."""
    from qphy.errors import PipelineError

    try:
        finished, expected, got = _run(tmp_path, simd, fixed)
    except PipelineError:
        finished, expected, got = False, None, None
    if fixed:
        assert finished and np.array_equal(got, expected)
    else:
        assert not finished
