"""`qphy build onnx` on Brevitas models with branches, joins and pooling, to a bit-exact verdict.

Residual MLP and CNN blocks (fork + integer add), a SqueezeNet fire module (fork + concat), a
RadioML-style 1-D CNN with MaxPool1d and a 2-D CNN with MaxPool2d and a global average pool:
each through qphy's own RTL stream layers (hw/layers) and the graph stitcher, verified under
random backpressure against qonnx's execution; latency and cycles/frame are compared with the
analytic figures (the analytic latency is an upper bound per path: every layer counted with its
full cycles per frame).
"""

from __future__ import annotations

import json

import pytest

from hw.config import HwBuildConfig
from qphy.flow import build_onnx
from sim.config import SimConfig
from tests.hw.graph_models import export_graph_model

#: name -> folding target (cycles per frame of the slowest layer).
MODELS = {"res_mlp": 32, "res_cnn": 64, "fire": 64, "pool1d": 64, "pool2d_gap": 128}


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
