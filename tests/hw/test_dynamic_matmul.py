"""What finn-plus 1.6.1 can do for the varying-channel DetNet (facts the README states):

* a dynamic matrix-vector product (both operands streams, e.g. ``H^T H x_hat``) becomes an
  MVAU_rtl with ``mem_mode = dynamic`` and its Verilog is generated without Vivado;
* the integer elementwise add of DetNet's ``0.9 * old`` skip, the stream fork of ``x_hat`` and
  the input concat have no RTL layer in finn-plus off Versal (they specialise to HLS, which
  needs finn-hlslib and Vitis HLS); qphy's own layers (hw/layers) are their RTL variants.
"""

from __future__ import annotations

import os

from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from hw.toolchain import finn_environment

PART = "xczu3eg-sbva484-1-e"
K = 4


def _graph(nodes, inputs, outputs, dtypes) -> ModelWrapper:
    vi = {
        name: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in {**inputs, **outputs}.items()
    }
    graph = helper.make_graph(nodes, "probe", [vi[n] for n in inputs], [vi[n] for n in outputs])
    model = ModelWrapper(qonnx_make_model(graph))
    for name, dt in dtypes.items():
        model.set_tensor_datatype(name, DataType[dt])
    return model.transform(InferShapes()).transform(InferDataTypes())


def test_dynamic_matmul_compiles_to_mvau_rtl(tmp_path):
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    with finn_environment(tmp_path):
        model = _graph(
            [helper.make_node("MatMul", ["x", "g"], ["y"])],
            {"x": [1, K], "g": [K, K]},
            {"y": [1, K]},
            {"x": "INT4", "g": "INT4"},
        )
        model = model.transform(InferQuantizedMatrixVectorActivation())
        model = model.transform(SpecializeLayers(PART)).transform(GiveUniqueNodeNames())
        (node,) = model.graph.node
        assert node.op_type == "MVAU_rtl"
        assert getCustomOp(node).get_nodeattr("mem_mode") == "dynamic"
        assert list(node.input) == ["x", "g"]  # both operands are input streams
        model = model.transform(PrepareIP(PART, 5.0))
        gen = getCustomOp(model.graph.node[0]).get_nodeattr("code_gen_dir_ipgen")
        files = os.listdir(gen)
        assert any(f.endswith("_dynamic_load_wrapper.v") for f in files), files


def test_integer_skip_add_fork_and_concat_become_qphy_rtl_layers(tmp_path):
    from finn.transformation.fpgadataflow.convert_to_hw.concat import InferConcatLayer
    from finn.transformation.fpgadataflow.convert_to_hw.duplicate_streams import (
        InferDuplicateStreamsLayer,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
        InferElementwiseBinaryOperation,
    )
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    from hw.steps_graph import specialize_graph_layers

    with finn_environment(tmp_path):
        # x_l = new + old, where old also feeds the next layer's input concat (the fork).
        model = _graph(
            [
                helper.make_node("Add", ["new", "old"], ["sum"]),
                helper.make_node("Concat", ["old", "other"], ["cat"], axis=-1),
            ],
            {"old": [1, K], "new": [1, K], "other": [1, K]},
            {"sum": [1, K], "cat": [1, 2 * K]},
            {"new": "INT8", "old": "INT8", "other": "INT8"},
        )
        model = model.transform(InferElementwiseBinaryOperation())
        model = model.transform(InferConcatLayer())
        model = model.transform(InferDuplicateStreamsLayer())
        model = specialize_graph_layers(model)
        model = model.transform(SpecializeLayers(PART))
        model = model.transform(GiveUniqueNodeNames())
        kinds = sorted(n.op_type for n in model.graph.node)
        assert kinds == ["AddStreams_rtl", "DuplicateStreams_rtl", "StreamingConcat_rtl"], kinds
        model = model.transform(PrepareIP(PART, 5.0))
        for node in model.graph.node:
            files = getCustomOp(node).get_rtl_file_list(abspath=True)
            assert all(os.path.isfile(f) for f in files), files
            assert any(f.endswith(f"{node.name}.sv") for f in files), files
