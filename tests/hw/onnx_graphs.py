"""Hand-made QONNX graphs for the error tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

QONNX_DOMAIN = "qonnx.custom_op.general"


def _quant(name: str, inp: str, out: str, scale: float, bits: int, signed: int = 1):
    inits = [
        helper.make_tensor(f"{name}_scale", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor(f"{name}_zp", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor(f"{name}_bits", TensorProto.FLOAT, [], [float(bits)]),
    ]
    node = helper.make_node(
        "Quant",
        [inp, f"{name}_scale", f"{name}_zp", f"{name}_bits"],
        [out],
        name=name,
        domain=QONNX_DOMAIN,
        signed=signed,
        narrow=0,
        rounding_mode="ROUND",
    )
    return node, inits


def unsupported_graph(path: Path) -> Path:
    """Quant -> MatMul -> Sigmoid -> MatMul -> Tanh -> Softmax: three unsupported nodes."""
    rng = np.random.default_rng(0)
    q0, i0 = _quant("QuantIn", "x", "xq", 0.0625, 8)
    w1 = helper.make_tensor(
        "W1", TensorProto.FLOAT, [30, 16], rng.integers(-7, 8, (30, 16)).astype(np.float32).ravel()
    )
    w2 = helper.make_tensor(
        "W2", TensorProto.FLOAT, [16, 20], rng.integers(-7, 8, (16, 20)).astype(np.float32).ravel()
    )
    nodes = [
        q0,
        helper.make_node("MatMul", ["xq", "W1"], ["h1"], name="fc1"),
        helper.make_node("Sigmoid", ["h1"], ["a1"], name="act1"),
        helper.make_node("MatMul", ["a1", "W2"], ["h2"], name="fc2"),
        helper.make_node("Tanh", ["h2"], ["a2"], name="act2"),
        helper.make_node("Softmax", ["a2"], ["y"], name="probs"),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 30])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20])],
        initializer=i0 + [w1, w2],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    )
    path.write_bytes(model.SerializeToString())
    return path


def float_weight_graph(path: Path) -> Path:
    """Quant -> MatMul with float (unquantized) weights -> Quant: passes the export check but
    the MatMul cannot become an MVAU."""
    rng = np.random.default_rng(1)
    q0, i0 = _quant("QuantIn", "x", "xq", 0.0625, 8)
    q1, i1 = _quant("QuantOut", "h", "y", 0.125, 8)
    w = helper.make_tensor(
        "W", TensorProto.FLOAT, [30, 20], rng.standard_normal((30, 20)).astype(np.float32).ravel()
    )
    nodes = [q0, helper.make_node("MatMul", ["xq", "W"], ["h"], name="fc_float"), q1]
    graph = helper.make_graph(
        nodes,
        "float_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 30])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20])],
        initializer=i0 + i1 + [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    )
    path.write_bytes(model.SerializeToString())
    return path
