"""`qphy build onnx` on QONNX models of other exporters: one small model per intake class,
built to RTL and checked bit-exactly in Verilator under random backpressure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hw.config import HwBuildConfig
from qphy.flow import build_onnx
from sim.config import SimConfig
from tests.hw.intake_graphs import CI_STYLES, mlp_graph

#: What each class runs on the host besides the input quantizer (head, post).
HOST = {
    "mnist_w2a2": ("Reshape(flatten) -> Sub(norm_sub) -> Div(norm_div)", None),
    "bipolar_w1a1": ("Sub(norm_sub) -> Div(norm_div)", None),
    "mlp_w3a3_in8": (None, "LogSoftmax(logsoftmax) (max |diff| to qonnx"),
    "pm1_input_w4a4": ("Mul(pm1_mul) -> Add(pm1_add)", None),
    "opset11_transpose": ("Reshape(flatten)", "ArgMax(argmax) exactly"),
}


@pytest.mark.rtl
@pytest.mark.parametrize("style", sorted(HOST))
def test_intake_class_bit_exact(verilator, style, tmp_path):
    f = mlp_graph(tmp_path / f"{style}.onnx", CI_STYLES[style])
    rep = build_onnx(
        f,
        tmp_path / "out",
        HwBuildConfig(target_cycles=64),
        SimConfig(n_vectors=300, seed=5, source_pause_prob=0.3, sink_pause_prob=0.3),
    )
    assert rep["bit_exact"] and rep["vectors_checked"] == 300
    head, post = HOST[style]
    assert ("host_head" in rep.extras) == (head is not None)
    if head:
        assert rep.extras["host_head"].startswith(f"host runs {head} -> input quantizer")
        assert "bit-exact" in rep.extras["host_head"]
    assert ("host_post" in rep.extras) == (post is not None)
    if post:
        assert rep.extras["host_post"].startswith(f"host runs {post}")


@pytest.mark.rtl
def test_qkeras_float_input_with_declared_precision_via_cli(verilator, tmp_path):
    """Float input, quantized weights and biases (MatMul + Add), softmax, opset 10: built with
    --input-precision through the command line."""
    f = mlp_graph(tmp_path / "qkeras.onnx", CI_STYLES["qkeras_softmax"])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "qphy.cli", "build", "onnx", str(f), "--out", str(out)]
    cmd += ["--input-precision", "fixed<8,3>", "--vectors", "300", "--target-cycles", "64"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PASS — bit-exact on 300 vectors" in res.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["bit_exact"] is True
    assert rep["host_post"].startswith("host runs Softmax(softmax) (max |diff| to qonnx")
    assert "integer accumulator of" in rep["verified"]["integers"]
