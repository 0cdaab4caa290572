"""`qphy build onnx` intake without Verilator: host head/post ops against onnxruntime, the
declared input precision, type legalisation for the RTL layers, and the refusals by name."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, ValueInfoProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from hw.config import HwBuildConfig
from hw.legalize import BipolarToInt2, rtl_weight_type
from hw.runner import run_build
from qphy.contracts import HostNode
from qphy.errors import ConfigError, UnsupportedLayerError
from qphy.flow import onnx_export_stage
from qphy.host_ops import run_nodes
from qphy.intake import parse_input_precision
from tests.hw.intake_graphs import CI_STYLES, MlpStyle, mlp_graph

# --- host ops == onnxruntime ------------------------------------------------------------------

_RNG = np.random.default_rng(0)
_X4 = (_RNG.standard_normal((5, 3, 4, 2)) * 4).astype(np.float32)
_X2 = (_RNG.integers(-20, 20, (7, 12)) * 0.25).astype(np.float32)  # ties for ArgMax/TopK
_C3 = _RNG.uniform(0.1, 2, 3).astype(np.float32)

#: (op, x, constant operands (None: the data), attrs, opset, output index, exact)
OPS = [
    ("Reshape", _X4, [None, np.asarray([1, 3, 8], np.int64)], {}, 13, 0, True),
    ("Flatten", _X4, [None], {"axis": 1}, 11, 0, True),
    ("Transpose", _X4, [None], {"perm": [0, 2, 3, 1]}, 13, 0, True),
    ("Unsqueeze", _X2, [None], {"axes": [1]}, 11, 0, True),
    ("Unsqueeze", _X2, [None, np.asarray([2], np.int64)], {}, 13, 0, True),
    ("Squeeze", _X4[:, :1], [None], {"axes": [1]}, 11, 0, True),
    ("Sub", _X4, [None, np.float32(0.1307)], {}, 13, 0, True),
    ("Div", _X4, [None, np.float32(0.3081)], {}, 13, 0, True),
    ("Mul", _X4, [np.float32(2.0), None], {}, 9, 0, True),
    ("Add", _X4, [None, _C3.reshape(1, 3, 1, 1)], {}, 13, 0, True),
    (
        "BatchNormalization",
        _X4,
        [None, _C3, _C3[::-1].copy(), _C3 * 0.3, _C3 + 1],
        {"epsilon": 1e-3},
        13,
        0,
        True,
    ),
    ("Softmax", _X2, [None], {"axis": 1}, 11, 0, False),
    ("Softmax", _X2, [None], {}, 13, 0, False),
    ("LogSoftmax", _X2, [None], {"axis": -1}, 13, 0, False),
    ("Sigmoid", _X2, [None], {}, 13, 0, False),
    ("ArgMax", _X2, [None], {"axis": 1, "keepdims": 0}, 13, 0, True),
    ("TopK", _X2, [None, np.asarray([3], np.int64)], {"axis": 1}, 11, 1, True),
    ("TopK", _X2, [None, np.asarray([3], np.int64)], {"axis": 1}, 11, 0, True),
]


def _ort(op, x, consts, attrs, opset, out_idx):
    names, inits = [], []
    for k, c in enumerate(consts):
        if c is None:
            names.append("x")
            continue
        arr = np.asarray(c)
        dtype = TensorProto.INT64 if arr.dtype == np.int64 else TensorProto.FLOAT
        inits.append(helper.make_tensor(f"c{k}", dtype, arr.shape, arr.ravel().tolist()))
        names.append(f"c{k}")
    outs = ["y0", "y1"] if op == "TopK" else ["y0"]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x.shape[1:]])],
        [ValueInfoProto(name=o) for o in outs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # The host applies a batch-1 graph's node to each vector of a batch.
    return np.concatenate([sess.run(None, {"x": x[i : i + 1]})[out_idx] for i in range(len(x))])


@pytest.mark.parametrize("op,x,consts,attrs,opset,out_idx,exact", OPS, ids=lambda v: None)
def test_host_op_matches_onnxruntime(op, x, consts, attrs, opset, out_idx, exact):
    ref = _ort(op, x, consts, attrs, opset, out_idx)
    node = HostNode(
        op,
        op.lower(),
        [None if c is None else np.asarray(c).tolist() for c in consts],
        {**attrs, "_opset": opset},
        out_idx,
    )
    mine = run_nodes(x, [node])
    assert mine.shape == ref.shape
    if exact:
        assert np.array_equal(mine, ref)
    else:
        assert np.max(np.abs(mine - ref)) <= 1e-6


# --- declared input precision -----------------------------------------------------------------


def test_input_precision_parses_hls4ml_notation():
    p = parse_input_precision("ap_fixed<8,3>")
    assert (p.bits, p.signed, p.scale, p.int_range) == (8, True, 2.0**-5, (-128, 127))
    u = parse_input_precision("ufixed<6, 6>")
    assert (u.bits, u.signed, u.scale, u.int_range) == (6, False, 1.0, (0, 63))
    assert parse_input_precision("int<4>").int_range == (-8, 7)


@pytest.mark.parametrize(
    "text,match",
    [("fixed<12,4>", "12 bits; the RTL layers take 2..8-bit"), ("float32", "expected fixed<W,I>")],
)
def test_bad_input_precision_is_config_error(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_input_precision(text)


def test_float_input_without_precision_is_refused_by_name(tmp_path):
    f = mlp_graph(tmp_path / "qkeras.onnx", CI_STYLES["qkeras_softmax"])
    with pytest.raises(UnsupportedLayerError, match=r"fc0 \(MatMul\): .*--input-precision"):
        onnx_export_stage(f, tmp_path / "exp", 8, 0)
    assert not (tmp_path / "exp").exists()


def test_precision_on_a_quantized_input_is_refused(tmp_path):
    f = mlp_graph(tmp_path / "m.onnx", CI_STYLES["mlp_w3a3_in8"])
    with pytest.raises(UnsupportedLayerError, match="QuantIn.*quantizes its own input"):
        onnx_export_stage(f, tmp_path / "exp", 8, 0, input_precision="fixed<8,3>")


def test_declared_precision_golden_equals_original_graph(tmp_path):
    f = mlp_graph(tmp_path / "qkeras.onnx", CI_STYLES["qkeras_softmax"])
    rep = onnx_export_stage(f, tmp_path / "exp", 64, 3, input_precision="fixed<8,3>")
    assert rep["input_precision"] == "fixed<8,3>"
    x = np.load(tmp_path / "exp" / "golden_in.npy")
    ints = x * 32
    assert np.array_equal(ints, np.round(ints)) and ints.min() >= -128 and ints.max() <= 127


def test_unsupported_head_op_is_refused_by_name(tmp_path):
    f = mlp_graph(tmp_path / "m.onnx", CI_STYLES["mlp_w3a3_in8"])
    model = ModelWrapper(str(f))
    quant = next(n for n in model.graph.node if n.name == "QuantIn")
    model.graph.node.insert(0, helper.make_node("Abs", ["x"], ["x_abs"], name="rectify"))
    quant.input[0] = "x_abs"
    model.save(str(f))
    with pytest.raises(UnsupportedLayerError, match=r"rectify \(Abs\): cannot run in the host"):
        onnx_export_stage(f, tmp_path / "exp", 8, 0)


# --- type legalisation --------------------------------------------------------------------------


def test_rtl_weight_types_are_widened_losslessly():
    from qonnx.core.datatype import DataType

    for name, wide in [
        ("BIPOLAR", "INT2"),
        ("BINARY", "INT2"),
        ("UINT2", "INT3"),
        ("INT3", "INT3"),
    ]:
        dt, w = DataType[name], rtl_weight_type(DataType[name])
        assert w.name == wide and w.min() <= dt.min() and w.max() >= dt.max()


@pytest.mark.parametrize(
    "dtype,scale,bias,wide,values",
    [("BIPOLAR", 2.0, -1.0, "INT2", {-1.0, 1.0}), ("BINARY", 1.0, 0.0, "UINT2", {0.0, 1.0})],
)
def test_one_bit_thresholds_as_two_bit_are_exact(dtype, scale, bias, wide, values):
    thr = np.asarray([[-1.0], [2.0], [0.0]], np.float32)
    node = helper.make_node(
        "MultiThreshold",
        ["x", "t"],
        ["y"],
        domain="qonnx.custom_op.general",
        out_dtype=dtype,
        out_scale=scale,
        out_bias=bias,
    )
    graph = helper.make_graph(
        [node],
        "mt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 3])],
    )
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("t", thr)
    x = np.random.default_rng(1).integers(-4, 5, (64, 3)).astype(np.float32)
    before = execute_onnx(model, {"x": x})["y"]
    after_model = model.transform(BipolarToInt2())
    after = execute_onnx(after_model, {"x": x})["y"]
    assert getCustomOp(after_model.graph.node[0]).get_nodeattr("out_dtype") == wide
    assert after_model.get_tensor_datatype("y").name == wide
    assert set(np.unique(before)) == values and np.array_equal(before, after)


@pytest.mark.parametrize("style", sorted(CI_STYLES))
def test_every_intake_class_specializes_to_rtl(style, tmp_path):
    """Up to SpecializeLayers (no Verilator): 1-3-bit, bipolar and unsigned types all become
    MVAU_rtl / Thresholding_rtl, and the host head/post ops are recorded."""
    f = mlp_graph(tmp_path / f"{style}.onnx", CI_STYLES[style])
    prec = "fixed<8,3>" if CI_STYLES[style].in_quant is None else None
    onnx_export_stage(f, tmp_path / "exp", 8, 0, input_precision=prec)
    res = run_build(
        tmp_path / "exp" / "model.qonnx.onnx",
        HwBuildConfig(stop_step="specialize_layers"),
        tmp_path / "hw",
    )
    ops = {n.op_type for n in res.model.graph.node}
    assert ops <= {"MVAU_rtl", "Thresholding_rtl"} and "MVAU_rtl" in ops
    meta = res.model.get_metadata_prop("qphy_host")
    st: MlpStyle = CI_STYLES[style]
    assert ('"input_head"' in meta) == bool(st.head or st.image)
    assert ('"output_post"' in meta) == bool(st.tail)


@pytest.mark.parametrize("bits", ["w2a2", "w3a2", "w2a4", "w4a2", "w3a3"])
def test_own_fullycon_below_4_bits_specializes_to_rtl(bits, tmp_path):
    """qphy's own Brevitas export below 4 bits (it used to fall back to MVAU_hls)."""
    from tests.hw.fixture_export import make_export

    export = make_export(tmp_path / "exp", bits=bits, n_golden=8, hidden=32, n_hidden_layers=1)
    res = run_build(
        export / "model.qonnx.onnx", HwBuildConfig(stop_step="specialize_layers"), tmp_path / "hw"
    )
    ops = [n.op_type for n in res.model.graph.node]
    assert set(ops) <= {"MVAU_rtl", "Thresholding_rtl"} and ops.count("MVAU_rtl") == 2


def test_head_transpose_of_the_batch_axis_is_refused_by_name(tmp_path):
    f = mlp_graph(tmp_path / "m.onnx", CI_STYLES["mlp_w3a3_in8"])
    model = ModelWrapper(str(f))
    quant = next(n for n in model.graph.node if n.name == "QuantIn")
    swap = helper.make_node("Transpose", ["x"], ["x_t"], name="swap", perm=[1, 0])
    model.graph.node.insert(0, swap)
    quant.input[0] = "x_t"
    model.save(str(f))
    with pytest.raises(UnsupportedLayerError, match=r"swap \(Transpose\): .*moves the batch axis"):
        onnx_export_stage(f, tmp_path / "exp", 8, 0)
