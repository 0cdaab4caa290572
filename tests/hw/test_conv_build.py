"""The hw build on a small quantized CSI encoder (conv net), without Verilator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hw.config import HwBuildConfig
from hw.runner import run_build
from hw.steps import STEPS
from hw.toolchain import finn_environment
from qphy.contracts import Manifest
from qphy.host import expected_integers, stream_inputs
from tests.hw.fixture_export import make_csi_export


@pytest.fixture(scope="module")
def conv_export(tmp_path_factory):
    return make_csi_export(tmp_path_factory.mktemp("export_conv"), "convcsinet", n_golden=16)


@pytest.fixture(scope="module")
def conv_build(conv_export, tmp_path_factory):
    return run_build(
        conv_export / "model.qonnx.onnx",
        HwBuildConfig(target_cycles=1200, target_latency_cycles=1000),
        tmp_path_factory.mktemp("hw_conv"),
    )


def test_conv_layers_become_rtl(conv_build):
    ops = [n.op_type for n in conv_build.model.graph.node if not n.op_type.startswith("Stream")]
    assert ops[:4] == [
        "FMPadding_rtl",
        "ConvolutionInputGenerator_rtl",
        "MVAU_rtl",
        "Thresholding_rtl",
    ]
    assert ops.count("MVAU_rtl") == 5 and ops[-1] == "Thresholding_rtl"
    report = json.loads(conv_build.report_path.read_text())
    assert report["analytic_cycles_per_frame"] <= 1200
    # An unreachable analytic latency target (FMPadding's 34x34 pixels alone exceed 1000) falls
    # back to the cycles target instead of unfolding everything.
    assert report["folding_target_cycles"] == 1200


def test_conv_dataflow_model_matches_qonnx_golden(conv_build, conv_export):
    """FINN's python execution of the conv dataflow partition, fed and read through the host's
    permutations, equals the QONNX golden integers."""
    from qonnx.core.modelwrapper import ModelWrapper

    host = Manifest.read(conv_build.rtl_dir / "manifest.json").host
    x = stream_inputs(np.load(conv_export / "golden_in.npy"), host)
    want = expected_integers(np.load(conv_export / "golden_out.npy"), host)
    k = list(STEPS).index("create_dataflow_partition") + 1
    path = conv_build.build_dir / "intermediate" / f"{k:02d}_create_dataflow_partition.onnx"
    with finn_environment(conv_build.build_dir):
        from finn.core.onnx_exec import execute_onnx

        model = ModelWrapper(str(path))
        iname, oname = model.graph.input[0].name, model.graph.output[0].name
        shape = model.get_tensor_shape(iname)
        got = np.concatenate(
            [
                execute_onnx(model, {iname: v.reshape(shape).astype(np.float32)})[oname].reshape(
                    1, -1
                )
                for v in x
            ]
        )
    assert np.array_equal(got.astype(np.int64), want)
