"""Conv-encoder support without Verilator: LeakyReLU thresholds, host layout, folding, checks."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from hw.config import HwBuildConfig, Preset
from hw.folding import mvau_folding
from hw.layout import strip_input_layout, strip_output_layout
from hw.runner import run_build
from hw.transforms import LeakyReluQuantToThresholds, RoundHalfEvenThresholds, is_power_of_two
from qphy.contracts import HostSpec, QuantSpec
from qphy.errors import UnsupportedLayerError
from qphy.host import model_order, stream_inputs
from qphy.reference import execute_batch
from tests.hw.onnx_graphs import QONNX_DOMAIN, _quant


def _model(nodes, inits, in_shape, out_shape) -> ModelWrapper:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    )
    return ModelWrapper(model)


ACC_SCALES = np.array([1 / 64, 1 / 128, 1 / 32], dtype=np.float32)


def leaky_quant_model(alpha: float, bits: int = 4, act_scale: float = 0.125) -> ModelWrapper:
    """Integer accumulator x (3 channels) -> Mul(per-channel PoT scale) -> LeakyRelu -> Quant."""
    q, qi = _quant("act_quant", "a", "y", act_scale, bits)
    nodes = [
        helper.make_node("Mul", ["x", "acc_scale"], ["h"], name="acc"),
        helper.make_node("LeakyRelu", ["h"], ["a"], name="leaky", alpha=alpha),
        q,
    ]
    scale = helper.make_tensor("acc_scale", TensorProto.FLOAT, [1, 3], ACC_SCALES)
    model = _model(nodes, qi + [scale], [1, 3], [1, 3])
    model.set_tensor_datatype("x", DataType["INT16"])
    return model


def test_leaky_thresholds_exact_including_ties():
    """Every integer accumulator value in a range that saturates both ends, ties included:
    thresholds (after streamlining onto the integer input and the half-even fix) equal the
    QONNX LeakyRelu -> Quant bit for bit."""
    from finn.transformation.streamline.absorb import AbsorbMulIntoMultiThreshold
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    ref = leaky_quant_model(0.25)
    x = np.repeat(np.arange(-700, 701, dtype=np.float32)[:, None], 3, axis=1)
    want = execute_batch(ref, x)
    model = leaky_quant_model(0.25).transform(LeakyReluQuantToThresholds())
    assert [n.op_type for n in model.graph.node] == ["Mul", "MultiThreshold", "Mul"]
    model = model.transform(InferShapes()).transform(AbsorbMulIntoMultiThreshold())
    model = model.transform(InferDataTypes()).transform(RoundHalfEvenThresholds())
    assert [n.op_type for n in model.graph.node] == ["MultiThreshold", "Mul"]
    got = execute_batch(model, x)
    # Ties: accumulators whose LeakyReLU lands exactly on a level midpoint, on both branches.
    y = np.where(x >= 0, x, x * 0.25) * ACC_SCALES / 0.125
    ties = y - np.floor(y) == 0.5
    assert ties[x < 0].sum() > 20 and ties[x > 0].sum() > 20
    assert np.array_equal(got, want)
    assert got.min() == -1.0 and got.max() == 0.875  # both ends saturate


def test_leaky_non_power_of_two_slope_refused():
    with pytest.raises(UnsupportedLayerError, match=r"leaky \(LeakyRelu\): .*not a power of two"):
        leaky_quant_model(0.3).transform(LeakyReluQuantToThresholds())
    assert is_power_of_two(0.25) and is_power_of_two(0.5) and not is_power_of_two(0.3)


def test_leaky_non_pot_and_pooling_listed_before_build(tmp_path):
    """The early QONNX check lists a non-PoT LeakyReLU and an unsupported pool with hints."""
    q0, i0 = _quant("QuantIn", "x", "xq", 1 / 16, 8)
    q1, i1 = _quant("QuantAct", "a", "y", 1 / 8, 4)
    w = helper.make_tensor(
        "W", TensorProto.FLOAT, [2, 2, 3, 3], np.ones(36, dtype=np.float32).tolist()
    )
    nodes = [
        q0,
        helper.make_node("Conv", ["xq", "W"], ["c"], name="conv", kernel_shape=[3, 3]),
        # an average pool other than the global one has no RTL layer (max pools do)
        helper.make_node(
            "AveragePool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("LeakyRelu", ["p"], ["a"], name="leaky", alpha=0.3),
        q1,
    ]
    model = _model(nodes, i0 + i1 + [w], [1, 2, 8, 8], [1, 2, 3, 3])
    path = tmp_path / "bad.onnx"
    model.save(str(path))
    with pytest.raises(UnsupportedLayerError, match=r"2 unsupported node\(s\)") as exc:
        run_build(path, HwBuildConfig(preset=Preset.CHECK), tmp_path / "build")
    hints = {n.name: n.hint for n in exc.value.nodes}
    assert "no RTL layer for this pooling" in hints["pool"] and "strided conv" in hints["pool"]
    assert "power of two" in hints["leaky"]


def test_layout_ops_move_to_host_as_permutations():
    """Cutting the boundary Transpose/Flatten and applying the recorded permutations on the
    host gives the original model's outputs."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["t", "two"], ["m"], name="scale"),
        helper.make_node("Transpose", ["m"], ["u"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Flatten", ["u"], ["y"], name="flat", axis=1),
    ]
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    ref = _model(nodes, [two], [1, 2, 3, 4], [1, 24])
    x = np.random.default_rng(0).standard_normal((5, 2, 3, 4)).astype(np.float32)
    want = execute_batch(ref, x).reshape(5, -1)

    model = _model(nodes, [two], [1, 2, 3, 4], [1, 24])
    model, in_perm = strip_input_layout(model)
    model, out_perm = strip_output_layout(model)
    assert [n.op_type for n in model.graph.node] == ["Mul"]
    assert model.get_tensor_shape(model.graph.input[0].name) == [1, 3, 4, 2]
    assert np.array_equal(in_perm, np.arange(24).reshape(1, 2, 3, 4).transpose(0, 2, 3, 1).ravel())
    hw_x = x.reshape(5, -1)[:, in_perm]  # hw_in[i] = x_flat[perm[i]]
    hw_y = execute_batch(model, hw_x.reshape(5, 3, 4, 2)).reshape(5, -1)
    got = model_order(
        hw_y, HostSpec(QuantSpec(1.0, 8, True, False), [24], "INT8", output_perm=out_perm)
    )
    assert np.array_equal(got, want)


def test_host_quantizes_then_permutes():
    x = np.random.default_rng(1).uniform(-0.6, 0.6, (4, 2, 3, 4)).astype(np.float32)
    perm = np.arange(24).reshape(1, 2, 3, 4).transpose(0, 2, 3, 1).ravel().tolist()
    host = HostSpec(QuantSpec(1 / 256, 8, True, False), [2, 3, 4], "INT8", input_perm=perm)
    ints = np.clip(np.round(x * 256), -128, 127).astype(np.int64)
    want = ints.transpose(0, 2, 3, 1).reshape(4, -1)
    assert np.array_equal(stream_inputs(x, host), want)
    assert np.array_equal(stream_inputs(x.reshape(4, -1), host), want)  # flat inputs too


def test_conv_folding_uses_parallel_window_for_one_pixel_per_cycle():
    # CsiNet+ 7x7 conv on 2 channels: MW = 98, one output pixel per cycle needs SIMD = 98,
    # which only the SWG's parallel-window mode can feed (SIMD choices: divisors of C, K*K*C).
    assert mvau_folding(98, 2, 1024, 1444, simd_choices=[1, 2, 98]) == (2, 98)
    pe, simd = mvau_folding(98, 2, 1024, 60000, simd_choices=[1, 2, 98])
    assert simd in (1, 2)


def test_conv_folding_counts_the_window_producers_cycles():
    """ConvCsiNet's stride-2 conv on 32 channels (16x16 -> 8x8): SIMD 16 with PE 32 gives the
    MVAU 1152 cycles, under a 1156 target, but the SWG then needs 1230 (measured: 1230 cycles
    per frame); such a SIMD is no candidate. Behind a stride-2 window the MVAU gets half the
    target (windows come in bursts, one output row per input row's time), and so does a 1x1
    conv behind it."""
    from qonnx.custom_op.registry import getCustomOp

    from hw.folding import (
        apply_folding,
        fold_window_producers,
        window_simd_choices,
        window_stride,
    )
    from tests.hw.onnx_graphs import conv_window_chain

    model = conv_window_chain()
    mvau = model.graph.node[2]
    assert fold_window_producers(model, mvau, 16) == 1230
    assert window_simd_choices(model, mvau, 1156) == [32, 288]
    assert window_stride(model, mvau) == 2
    apply_folding(model, 1156, prefer_latency=True)
    cycles = {n.name: getCustomOp(n).get_exp_cycles() for n in model.graph.node}
    assert cycles["swg"] <= 1156 and cycles["pad"] <= 1156
    assert cycles["mvau"] <= 1156 // 2
    # Unreachable target: the fastest window producer (parallel window: one pixel per cycle).
    assert window_simd_choices(model, mvau, 100) == [288]
    unstrided = conv_window_chain(stride=1)
    assert window_stride(unstrided, unstrided.graph.node[2]) == 1
    # A 1x1 conv behind the strided one sees the same bursts (no window of its own).
    chained = apply_folding(conv_window_chain(pointwise=8), 1156, prefer_latency=True)
    assert getCustomOp(chained.graph.node[3]).get_exp_cycles() <= 1156 // 2
