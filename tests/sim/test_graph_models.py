"""`qphy build onnx` on Brevitas models with branches, joins and pooling, to a bit-exact verdict.

Residual MLP and CNN blocks (fork + integer add), a SqueezeNet fire module (fork + concat), a
RadioML-style 1-D CNN with MaxPool1d and a 2-D CNN with MaxPool2d and a global average pool:
each through qphy's own RTL stream layers (hw/layers) and the graph stitcher, verified under
random backpressure against qonnx's execution; latency and cycles/frame are compared with the
analytic figures (the analytic latency is an upper bound per path: every layer counted with its
full cycles per frame).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from hw.config import FifoSizing, HwBuildConfig
from hw.graph_stitch import FIFO_OP
from hw.stitch import write_top
from qphy.contracts import Manifest
from qphy.errors import DeadlockError
from qphy.flow import build_onnx
from sim.config import SimConfig
from sim.verdict import build_rtl_sim, simulate
from tests.hw.graph_models import export_graph_model

#: name -> folding target (cycles per frame of the slowest layer). The residual MLP is built
#: with minimal FINN FIFOs in its own test below (its branch FIFOs are then all it has).
MODELS = {"res_cnn": 64, "fire": 64, "pool1d": 64, "pool2d_gap": 128}


@pytest.mark.rtl
@pytest.mark.parametrize("name", list(MODELS))
def test_graph_model_bit_exact(verilator, tmp_path, name):
    path = export_graph_model(name, tmp_path / f"{name}.onnx", seed=0)
    out = tmp_path / "out"
    report = build_onnx(
        path,
        out,
        HwBuildConfig(target_cycles=MODELS[name]),
        SimConfig(n_vectors=64, seed=3, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    assert report.passed and report["bit_exact"] and report["vectors_checked"] == 64
    hw = json.loads((out / "hw" / "hw_report.json").read_text())
    print(
        f"{name}: latency {report['latency_cycles']} cycles (analytic "
        f"{hw['analytic_latency_cycles']}), {report['cycles_per_frame']} cycles/frame "
        f"(analytic {hw['analytic_cycles_per_frame']})"
    )
    assert report["cycles_per_frame"] <= 1.25 * hw["analytic_cycles_per_frame"] + 8


@pytest.mark.rtl
def test_residual_mlp_branch_fifo_analytic_then_too_shallow(verilator, tmp_path):
    """Residual MLP with minimal (2-beat) FINN FIFOs: the skip branch must hold the frame the
    MLP branch reads before it answers, and the analytic branch FIFO before the add is what
    holds it (bit-exact under backpressure); cut to one beat, the same design stops and the
    verdict is a DeadlockError naming the add's branch FIFO stream, not a hang or a mismatch."""
    path = export_graph_model("res_mlp", tmp_path / "res_mlp.onnx", seed=0)
    out = tmp_path / "out"
    report = build_onnx(
        path,
        out,
        HwBuildConfig(target_cycles=32, fifo_sizing=FifoSizing.MINIMAL),
        SimConfig(n_vectors=64, seed=3, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    assert report.passed and report["bit_exact"]
    hw = json.loads((out / "hw" / "hw_report.json").read_text())
    branch_depths = {k: v for k, v in hw["fifo_depths"].items() if "_fifo" in k}
    print(
        f"res_mlp: latency {report['latency_cycles']} cycles (analytic "
        f"{hw['analytic_latency_cycles']}), {report['cycles_per_frame']} cycles/frame "
        f"(analytic {hw['analytic_cycles_per_frame']}); branch FIFOs {branch_depths}"
    )
    assert report["cycles_per_frame"] <= 1.25 * hw["analytic_cycles_per_frame"] + 8
    rtl = out / "hw" / "rtl"
    manifest = Manifest.read(rtl / Manifest.FILE)
    assert len([n for n in manifest.nodes if n.op_type == FIFO_OP]) == 2
    shallow = [
        dataclasses.replace(n, fifo_depth=1, params={**n.params, "DEPTH": 1})
        if n.op_type == FIFO_OP
        else n
        for n in manifest.nodes
    ]
    manifest = dataclasses.replace(manifest, nodes=shallow)
    manifest.write(rtl / Manifest.FILE)
    write_top(rtl, manifest)
    shallow_cfg = SimConfig(n_vectors=8, seed=3, stall_limit_cycles=5_000)
    build_rtl_sim(out / "hw", out / "sim", shallow_cfg)  # re-stitched top, new harness
    with pytest.raises(DeadlockError, match=r"stalled streams.*AddStreams_rtl_0_in0_fifo") as exc:
        simulate(out / "hw", out / "sim", shallow_cfg, "res_mlp", run_dir=tmp_path / "shallow")
    print(exc.value)
