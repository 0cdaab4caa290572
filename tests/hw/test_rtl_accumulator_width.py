"""MVAU_rtl needs ``ACCU_WIDTH >= WEIGHT_WIDTH + ACTIVATION_WIDTH - signed(act)`` (mvu.sv
asserts it); FINN's MinimizeAccumulatorWidth gives the exact range of the sums, narrower when
few small weights meet unsigned inputs. Regression of the varying-channel DetNet's layer-1
``mix_x`` (one weight per row on an unsigned 8-bit input): the L = 2 RTL stopped on that
assertion (docs/detnet-iid.md). The build's bit-width step must widen the accumulator, its
output type and its consumer's input type, values unchanged."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.config import HwBuildConfig
from hw.steps import step_minimize_bit_width

MW, MH = 6, 4


def _mvau_then_thresholds(weights: np.ndarray) -> ModelWrapper:
    """MVAU_rtl (UINT8 input, INT4 weights, no activation) -> Thresholding_rtl."""
    mvau = helper.make_node(
        "MVAU_rtl",
        ["x", "w"],
        ["acc"],
        name="MVAU_rtl_0",
        domain="finn.custom_op.fpgadataflow.rtl",
        backend="fpgadataflow",
        MW=MW,
        MH=MH,
        SIMD=1,
        PE=1,
        inputDataType="UINT8",
        weightDataType="INT4",
        outputDataType="INT32",
        noActivation=1,
        mem_mode="internal_decoupled",
    )
    thr = helper.make_node(
        "Thresholding_rtl",
        ["acc", "t"],
        ["y"],
        name="Thresholding_rtl_0",
        domain="finn.custom_op.fpgadataflow.rtl",
        backend="fpgadataflow",
        NumChannels=MH,
        PE=1,
        numSteps=1,
        inputDataType="INT32",
        weightDataType="INT32",
        outputDataType="UINT1",
        numInputVectors=[1],
    )
    graph = helper.make_graph(
        [mvau, thr],
        "mvau_thr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, MW])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, MH])],
    )
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("w", weights.astype(np.float32))
    model.set_initializer("t", np.zeros((MH, 1), dtype=np.float32))
    model.set_tensor_datatype("x", DataType["UINT8"])
    model.set_tensor_datatype("w", DataType["INT4"])
    model.set_tensor_datatype("acc", DataType["INT32"])
    model.set_tensor_datatype("t", DataType["INT32"])
    model.set_tensor_datatype("y", DataType["UINT1"])
    return model


def test_rtl_accumulator_holds_a_full_product():
    w = np.zeros((MW, MH))
    w[np.arange(MH), np.arange(MH)] = 2.0  # one small weight per output: sums in 0..510
    model = step_minimize_bit_width(_mvau_then_thresholds(w), HwBuildConfig())
    mvau, thr = model.graph.node
    inst = getCustomOp(mvau)
    acc = DataType[inst.get_nodeattr("accDataType")]
    wdt = DataType[inst.get_nodeattr("weightDataType")]
    # the exact range (0..510) needs 10 bits; MVAU_rtl needs 4 + 8 for unsigned inputs
    assert acc.bitwidth() >= wdt.bitwidth() + 8
    assert DataType[inst.get_nodeattr("outputDataType")] == acc
    assert model.get_tensor_datatype("acc") == acc
    assert DataType[getCustomOp(thr).get_nodeattr("inputDataType")] == acc
    assert np.array_equal(model.get_initializer("w"), w)
