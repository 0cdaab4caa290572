"""hw.names (the user's node names through the build) and hw.layer_report (folding verdict)."""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from hw.layer_report import folding_verdict
from hw.names import display, keep_user_names, tag_user_names, user_names


class _Fuse(Transformation):
    """MatMul + Relu -> one new node (as FINN's conversions replace node groups)."""

    def apply(self, model):
        g = model.graph
        mm, relu = g.node[0], g.node[1]
        fused = helper.make_node(
            "Fused", [mm.input[0], mm.input[1]], [relu.output[0]], name="Fused_0"
        )
        g.node.remove(mm)
        g.node.remove(relu)
        g.node.insert(0, fused)
        return model, False


class _AddCopy(Transformation):
    """A FIFO-like node after the first one (replaces nothing)."""

    def apply(self, model):
        g = model.graph
        first = g.node[0]
        out = first.output[0]
        first.output[0] = out + "_pre"
        g.node.insert(1, helper.make_node("Copy", [out + "_pre"], [out], name="Fifo_0"))
        return model, False


def _model():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["y"]),  # unnamed: <op>_at_<index>
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", 1, [1, 2])],
        [helper.make_tensor_value_info("y", 1, [1, 2])],
    )
    return ModelWrapper(helper.make_model(graph))


def test_names_follow_replacements_and_inserted_nodes():
    model = tag_user_names(_model())
    with keep_user_names():
        model = model.transform(_Fuse(), cleanup=False)
        model = model.transform(_AddCopy(), cleanup=False)
    fused, fifo = model.graph.node
    assert user_names(fused) == ["fc1", "Relu_at_1"]
    assert user_names(fifo) == ["fc1", "Relu_at_1"]  # belongs to the layer feeding it
    assert display(fused) == "fc1, Relu_at_1 (Fused_0)"
    # outside the context the wrap is gone
    model = model.transform(_AddCopy(), cleanup=False)
    assert user_names(model.graph.node[1]) == []


def test_folding_verdict_names_the_layer_that_holds_the_target_back():
    hw = {"folding_target_cycles": 16, "analytic_cycles_per_frame": 40}
    rows = [
        {
            "finn_node": "MVAU_rtl_0",
            "op_type": "MVAU_rtl",
            "user_nodes": ["conv1"],
            "PE": 8,
            "SIMD": 9,
            "MH": 8,
            "MW": 9,
            "cycles": 40,
        },
        {"finn_node": "F", "op_type": "StreamingFIFO_rtl", "user_nodes": ["conv1"], "cycles": 0},
    ]
    v = folding_verdict(hw, rows)
    assert v["met"] is False
    assert v["slowest_layer"]["user_nodes"] == ["conv1"]
    assert "conv1 (MVAU_rtl_0) is fully parallel (PE = MH = 8, SIMD = MW = 9)" in v["why"]
    hw["analytic_cycles_per_frame"] = 16
    assert folding_verdict(hw, rows)["met"] is True
