"""Brevitas models as users write them (default quantizers, float output layer, 1-D/2-D convs)
through `qphy build onnx`'s export, hw and vectors stages, without RTL simulation.

The expected integers of a float output tail come from qonnx's execution of the reference up to
the last layer's integer accumulator; here they are also checked against FINN's own python
execution of the built dataflow partition (the RTL tests check them against Verilator).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import HwBuildConfig, Preset
from hw.runner import run_build
from hw.toolchain import finn_environment
from qphy import host
from qphy.errors import MalformedModelError, UnsupportedLayerError
from qphy.flow import build_onnx, hw_stage, onnx_export_stage, vectors_stage
from qphy.reference import (
    MODEL_FILE,
    accelerator_integers,
    float_tail,
    load_reference,
    read_export,
)
from tests.hw.brevitas_user_models import export_user_model

N_VECTORS = 24


@pytest.fixture(scope="module")
def user_onnx(tmp_path_factory):
    """Exported user models by name (exported once per module)."""
    root = tmp_path_factory.mktemp("user_models")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = export_user_model(name, root / f"{name}.onnx", seed=0)
        return cache[name]

    return get


def test_float_output_golden_is_not_integer_times_scale(user_onnx, tmp_path):
    """The issue's failure: inverting the float golden outputs of a default-quantizer MLP
    through the host tail cannot give integers (bias and float re-association)."""
    export = tmp_path / "export"
    onnx_export_stage(user_onnx("mlp"), export, N_VECTORS, seed=3)
    hw = tmp_path / "hw"
    manifest = hw_stage(export, hw, HwBuildConfig(target_cycles=32))
    golden = read_export(export)
    with pytest.raises(MalformedModelError, match="is not an integer times the output scale"):
        host.expected_integers(golden.outputs, manifest.host)
    # The shared mechanism takes the integers from the reference's last accumulator instead.
    _, expected, verified = vectors_stage(golden, manifest, tmp_path / "sim")
    assert expected.shape == (N_VECTORS, 5) and expected.dtype == np.int64
    assert "Gemm" in verified["verified"]["integers"]
    assert verified["verified"]["float_tail"].startswith("host applies Mul -> Add")
    assert verified["float_tail_max_abs_diff"] <= 1e-4 * verified["float_tail_max_abs_golden"]


def test_reference_integers_reproduce_the_float_output(user_onnx):
    """accelerator_integers: exact int64 accumulators whose float tail is qonnx's output."""
    from qphy.reference import execute_batch, random_inputs

    model = load_reference(user_onnx("mlp"))
    tail = float_tail(model)
    assert tail is not None and tail.linear.op_type == "Gemm" and tail.path == ()
    x = random_inputs((16,), 50, seed=1, saturate_scale=64.0)
    ints = accelerator_integers(model, tail, x)
    ctx = execute_batch(model, x, full_context=True)
    y = np.asarray(ctx[model.graph.output[0].name], dtype=np.float64)
    node = tail.linear
    a_scale = float(ctx[model.find_producer(node.input[0]).input[1]])
    w_scale = float(ctx[model.find_producer(node.input[1]).input[1]])
    bias = np.asarray(ctx[node.input[2]], dtype=np.float64)
    approx = ints * (a_scale * w_scale) + bias
    assert np.max(np.abs(approx - y)) < 1e-5 * np.max(np.abs(y))
    assert np.abs(ints).max() > 0


@pytest.mark.parametrize("name", ["mlp", "mlp8_perchannel", "cnn2d", "cnn2d_bn", "cnn1d"])
def test_expected_integers_equal_finn_execution(user_onnx, tmp_path, name):
    """hw build (RTL preset, no simulator) + vectors; FINN's python execution of the dataflow
    partition on the stream inputs gives exactly the expected integers."""
    from finn.core.onnx_exec import execute_onnx
    from qonnx.core.modelwrapper import ModelWrapper

    export = tmp_path / "export"
    onnx_export_stage(user_onnx(name), export, N_VECTORS, seed=5)
    manifest = hw_stage(export, tmp_path / "hw", HwBuildConfig(target_cycles=64))
    assert {n.op_type for n in manifest.nodes} >= {"MVAU_rtl"}
    if name.startswith("cnn"):
        assert "ConvolutionInputGenerator_rtl" in {n.op_type for n in manifest.nodes}
    inputs, expected, verified = vectors_stage(read_export(export), manifest, tmp_path / "sim")
    assert verified["float_tail_max_abs_diff"] <= 1e-4 * verified["float_tail_max_abs_golden"]
    part = tmp_path / "hw" / "intermediate" / "08_create_dataflow_partition.onnx"
    model = ModelWrapper(str(part))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    shape = model.get_tensor_shape(iname)
    with finn_environment(tmp_path / "hw"):
        got = np.stack(
            [
                np.asarray(execute_onnx(model, {iname: v.reshape(shape).astype(np.float32)})[oname])
                .reshape(-1)
                .astype(np.int64)
                for v in inputs
            ]
        )
    assert np.array_equal(got, expected)


def test_conv1d_becomes_2d_swg(user_onnx, tmp_path):
    res = run_build(user_onnx("cnn1d"), HwBuildConfig(preset=Preset.CHECK), tmp_path / "build")
    ops = [n.op_type for n in res.model.graph.node]
    assert ops.count("ConvolutionInputGenerator") == 2 and ops.count("MVAU") == 3
    shape = res.model.get_tensor_shape(res.model.graph.input[0].name)
    assert len(shape) == 4 and shape[2] == 1  # NHWC with the 1-wide dimension


def test_maxpool_becomes_swg_and_rtl_pool(user_onnx, tmp_path):
    """MaxPool1d was refused until qphy had its own RTL pool (hw/layers): now it lowers to a
    depthwise sliding-window generator and a Pool layer."""
    res = run_build(
        user_onnx("cnn1d_maxpool"), HwBuildConfig(preset=Preset.CHECK), tmp_path / "build"
    )
    ops = [n.op_type for n in res.model.graph.node]
    assert "Pool" in ops and "MaxPool" not in ops
    pool = res.model.graph.node[ops.index("Pool")]
    assert res.model.find_producer(pool.input[0]).op_type == "ConvolutionInputGenerator"


def test_missing_input_quantizer_refused(user_onnx, tmp_path):
    with pytest.raises(
        UnsupportedLayerError, match=r"graph input must go through a Quant node.*QuantIdentity"
    ):
        build_onnx(user_onnx("no_input_quant"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unquantized_output_op_refused(user_onnx, tmp_path):
    with pytest.raises(
        UnsupportedLayerError, match=r"/act/Relu \(Relu\): the model's output must come from"
    ) as err:
        build_onnx(user_onnx("float_relu_out"), tmp_path / "out")
    assert "golden" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_export_report_names_the_source(user_onnx, tmp_path):
    report = onnx_export_stage(user_onnx("cnn2d"), tmp_path / "e", 4, seed=0)
    assert report["variant"] == "cnn2d"
    assert (tmp_path / "e" / MODEL_FILE).is_file()
    assert json.loads((tmp_path / "e" / "export_report.json").read_text())["variant"] == "cnn2d"
