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


RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"


def conv_window_chain(
    ifm: int = 16, ch: int = 32, mh: int = 32, k: int = 3, stride: int = 2, pointwise: int = 0
):
    """FMPadding_rtl -> ConvolutionInputGenerator_rtl -> MVAU_rtl of one padded KxK conv (NHWC,
    INT4), folding attributes at 1: ConvCsiNet's second stride-2 conv by default. With
    ``pointwise`` > 0, a 1x1 conv to that many channels (an MVAU_rtl "pw") follows."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    ofm = (ifm + 2 - k) // stride + 1
    pad = helper.make_node(
        "FMPadding_rtl",
        ["x"],
        ["xp"],
        name="pad",
        domain=RTL_DOMAIN,
        ImgDim=[ifm, ifm],
        Padding=[1, 1, 1, 1],
        NumChannels=ch,
        SIMD=1,
        inputDataType="INT4",
        numInputVectors=1,
    )
    swg = helper.make_node(
        "ConvolutionInputGenerator_rtl",
        ["xp"],
        ["xw"],
        name="swg",
        domain=RTL_DOMAIN,
        ConvKernelDim=[k, k],
        IFMChannels=ch,
        IFMDim=[ifm + 2, ifm + 2],
        OFMDim=[ofm, ofm],
        SIMD=1,
        Stride=[stride, stride],
        Dilation=[1, 1],
        inputDataType="INT4",
        outputDataType="INT4",
    )
    mvau = helper.make_node(
        "MVAU_rtl",
        ["xw", "w"],
        ["y"],
        name="mvau",
        domain=RTL_DOMAIN,
        MW=k * k * ch,
        MH=mh,
        SIMD=1,
        PE=1,
        inputDataType="INT4",
        weightDataType="INT4",
        outputDataType="INT32",
        numInputVectors=[1, ofm, ofm],
    )
    nodes, out, out_ch = [pad, swg, mvau], "y", mh
    if pointwise:
        nodes.append(
            helper.make_node(
                "MVAU_rtl",
                ["y", "w_pw"],
                ["z"],
                name="pw",
                domain=RTL_DOMAIN,
                MW=mh,
                MH=pointwise,
                SIMD=1,
                PE=1,
                inputDataType="INT4",
                weightDataType="INT4",
                outputDataType="INT32",
                numInputVectors=[1, ofm, ofm],
            )
        )
        out, out_ch = "z", pointwise
    graph = helper.make_graph(
        nodes,
        "conv_window_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ifm, ifm, ch])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, ofm, ofm, out_ch])],
    )
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("w", np.zeros((k * k * ch, mh), dtype=np.float32))
    if pointwise:
        model.set_initializer("w_pw", np.zeros((mh, pointwise), dtype=np.float32))
    return model


def tiny_mlp_graph(path: Path, batch: int = 1, n_in: int = 8, n_out: int = 4) -> Path:
    """Quant(8-bit in) -> MatMul(4-bit weights) -> Relu -> Quant(4-bit unsigned): the smallest
    graph qphy builds (one MVAU, thresholds); ``batch`` > 1 to test the batch refusal."""
    rng = np.random.default_rng(1)
    q0, i0 = _quant("QuantIn", "x", "xq", 0.0625, 8)
    wq, iw = _quant("QuantW", "W", "Wq", 1.0, 4)
    q1, i1 = _quant("QuantOut", "r", "y", 0.5, 4, signed=0)
    w = helper.make_tensor(
        "W",
        TensorProto.FLOAT,
        [n_in, n_out],
        rng.integers(-7, 8, (n_in, n_out)).astype(np.float32).ravel(),
    )
    nodes = [
        q0,
        wq,
        helper.make_node("MatMul", ["xq", "Wq"], ["h"], name="fc"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        q1,
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])],
        initializer=i0 + iw + i1 + [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    )
    path.write_bytes(model.SerializeToString())
    return path
