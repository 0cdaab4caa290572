"""MVAU_rtl reads weights as signed: one-sign weights must not reach it as an unsigned type.

Regression of the iid DetNet at L >= 3 (docs/detnet-iid.md): a middle layer's ``mix_v`` has
weights in {0, 1, 7} only, FINN's MinimizeWeightBitWidth made them UINT3, and the RTL MVU read
7 as -1 (every vector mismatched). The build's bit-width step must leave a signed type that
holds the same values, and the RTL export refuses an unsigned one by name.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from hw.config import HwBuildConfig
from hw.legalize import require_signed_rtl_weights
from hw.steps import step_minimize_bit_width
from qphy.errors import PipelineError

MW, MH = 6, 4


def _mvau_rtl(weights: np.ndarray, wdt: str) -> ModelWrapper:
    """One MVAU_rtl (INT8 input, no activation) with ``weights`` declared as ``wdt``."""
    node = helper.make_node(
        "MVAU_rtl",
        ["x", "w"],
        ["y"],
        name="MVAU_rtl_0",
        domain="finn.custom_op.fpgadataflow.rtl",
        backend="fpgadataflow",
        MW=MW,
        MH=MH,
        SIMD=1,
        PE=1,
        inputDataType="INT8",
        weightDataType=wdt,
        outputDataType="INT32",
        noActivation=1,
        mem_mode="internal_decoupled",
    )
    graph = helper.make_graph(
        [node],
        "mvau",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, MW])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, MH])],
    )
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("w", weights.astype(np.float32))
    model.set_tensor_datatype("x", DataType["INT8"])
    model.set_tensor_datatype("w", DataType[wdt])
    model.set_tensor_datatype("y", DataType["INT32"])
    return model


def test_minimize_bit_width_keeps_one_sign_weights_signed():
    # DetNet's mix_v pattern: 0.1 I and 0.9 I quantized to 1 and 7 (all >= 0)
    w = np.zeros((MW, MH))
    w[np.arange(MH), np.arange(MH)] = 1.0
    w[MW - 2 :, :2] = 7.0
    model = step_minimize_bit_width(_mvau_rtl(w, "INT4"), HwBuildConfig())
    node = model.graph.node[0]
    wdt = DataType[getCustomOp(node).get_nodeattr("weightDataType")]
    # FINN alone would give UINT3 here, which MVAU_rtl reads as 7 -> -1
    assert wdt.signed() and wdt.allowed(7.0) and wdt.allowed(0.0)
    assert model.get_tensor_datatype(node.input[1]) == wdt
    assert np.array_equal(model.get_initializer("w"), w)
    require_signed_rtl_weights(node, getCustomOp(node))  # what the export checks


@pytest.mark.parametrize("wdt", ["UINT3", "BINARY"])
def test_export_refuses_unsigned_rtl_weights_by_name(wdt):
    model = _mvau_rtl(np.ones((MW, MH)), wdt)
    node = model.graph.node[0]
    with pytest.raises(PipelineError, match=rf"MVAU_rtl_0: weight type {wdt} is unsigned"):
        require_signed_rtl_weights(node, getCustomOp(node))
